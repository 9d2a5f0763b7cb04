//! Command-line values: human or ISO 8601 durations, instants, ports, labels.

use crate::{CliResult, usage};
use jiff::{SignedDuration, Timestamp};

/// A duration as `90m`, `2h`, `1h30m`, `2 hours` or ISO 8601 (`PT2H`), answered as ISO 8601
/// for the API.
pub fn duration(s: &str) -> CliResult<String> {
    let d: SignedDuration = s
        .trim()
        .parse()
        .map_err(|_| usage(format!("{s:?} is not a duration; try 90m, 2h or PT2H")))?;
    if d <= SignedDuration::ZERO {
        return Err(usage(format!("{s:?}: a duration must be positive")));
    }
    let secs = d.as_secs();
    let (h, m, sec) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut iso = "PT".to_owned();
    if h > 0 {
        iso.push_str(&format!("{h}H"));
    }
    if m > 0 {
        iso.push_str(&format!("{m}M"));
    }
    if sec > 0 || iso == "PT" {
        iso.push_str(&format!("{sec}S"));
    }
    Ok(iso)
}

/// A duration for the client itself (e.g. how long to wait).
pub fn std_duration(s: &str) -> CliResult<std::time::Duration> {
    let d: SignedDuration = s
        .trim()
        .parse()
        .map_err(|_| usage(format!("{s:?} is not a duration; try 30s or 2m")))?;
    std::time::Duration::try_from(d)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| usage(format!("{s:?}: a duration must be positive")))
}

/// An instant as RFC 3339 (`2026-11-25T18:00:00Z`, or with an offset), answered in UTC.
pub fn instant(s: &str) -> CliResult<String> {
    timestamp(s).map(|t| t.to_string())
}

/// An instant as RFC 3339 (`2026-11-25T18:00:00Z`, or with an offset).
pub fn timestamp(s: &str) -> CliResult<Timestamp> {
    s.trim().parse().map_err(|_| {
        usage(format!(
            "{s:?} is not an instant; give RFC 3339, e.g. 2026-11-25T18:00:00Z"
        ))
    })
}

/// A port number.
pub fn port(s: &str) -> CliResult<u16> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| usage(format!("{s:?} is not a port number (1-65535)")))
}

/// `key=value`.
pub fn label(s: &str) -> CliResult<(String, String)> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| usage(format!("label {s:?} is not key=value")))
}

/// A resource id or scope: it must start with `/`.
pub fn id(s: &str) -> CliResult<String> {
    if s.starts_with('/') && !s.contains(char::is_whitespace) {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err(usage(format!(
            "{s:?} is not a resource id; give the full id, e.g. /subscriptions/s1/resourceGroups/rg1/machines/vm1"
        )))
    }
}

/// The last segment of a resource id.
pub fn name_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// The resource group scope of a resource id (`/subscriptions/S/resourceGroups/RG`).
pub fn group_of(id: &str) -> CliResult<String> {
    let parts: Vec<&str> = id.split('/').collect();
    match parts.as_slice() {
        ["", "subscriptions", s, "resourceGroups", rg, ..] => {
            Ok(format!("/subscriptions/{s}/resourceGroups/{rg}"))
        }
        _ => Err(usage(format!("{id:?} is not inside a resource group"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        for (given, iso) in [
            ("90m", "PT1H30M"),
            ("2h", "PT2H"),
            ("1h30m", "PT1H30M"),
            ("PT3H", "PT3H"),
            ("45s", "PT45S"),
            ("2 hours", "PT2H"),
        ] {
            assert_eq!(duration(given).unwrap(), iso, "{given}");
        }
        for bad in ["", "soon", "-1h", "0m"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants_and_ids() {
        assert_eq!(
            instant("2026-11-25T19:00:00+01:00").unwrap(),
            "2026-11-25T18:00:00Z"
        );
        assert!(instant("tomorrow").is_err());
        assert!(port("0").is_err() && port("70000").is_err() && port("22").is_ok());
        assert_eq!(label("env=prod").unwrap(), ("env".into(), "prod".into()));
        assert!(label("=x").is_err());
        assert!(id("vm1").is_err());
        assert_eq!(
            group_of("/subscriptions/s/resourceGroups/rg/machines/m").unwrap(),
            "/subscriptions/s/resourceGroups/rg"
        );
        assert!(group_of("/subscriptions/s").is_err());
    }
}
