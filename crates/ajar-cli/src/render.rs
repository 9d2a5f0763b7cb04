//! Printing answers: the API's JSON as is, or aligned tables with instants in local time.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;

/// A table column: its header and the JSON pointer of its value in each item.
pub type Column = (&'static str, &'static str);

/// Prints JSON, pretty.
pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A value as a table cell: strings as they are (RFC 3339 instants in local time), arrays
/// joined with commas, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => local_time(s).unwrap_or_else(|| s.clone()),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(_) => v.to_string(),
        other => other.to_string(),
    }
}

/// An RFC 3339 instant shown in the system's time zone.
pub fn local_time(s: &str) -> Option<String> {
    if !(s.len() >= 20 && s.as_bytes().get(4) == Some(&b'-') && s.ends_with('Z')) {
        return None;
    }
    let t: Timestamp = s.parse().ok()?;
    Some(
        t.to_zoned_datetime(TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
    )
}

/// Rows as an aligned table.
pub fn table(rows: &[Value], columns: &[Column]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|(_, p)| cell(r.pointer(p).unwrap_or(&Value::Null)))
                .collect()
        })
        .collect();
    print!(
        "{}",
        aligned(
            columns.iter().map(|(h, _)| (*h).to_owned()).collect(),
            &cells
        )
    );
}

/// Lays out a header and rows in columns separated by two spaces.
pub fn aligned(header: Vec<String>, rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header);
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// One object as `name  value` lines.
pub fn fields(value: &Value, fields: &[Column]) {
    let rows: Vec<Vec<String>> = fields
        .iter()
        .map(|(name, p)| {
            vec![
                format!("{name}:"),
                cell(value.pointer(p).unwrap_or(&Value::Null)),
            ]
        })
        .collect();
    let out = aligned(vec![String::new(), String::new()], &rows);
    // Drop the empty header line.
    print!(
        "{}",
        out.split_once('\n').map(|(_, rest)| rest).unwrap_or("")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_are_readable() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&json!(22)), "22");
        assert_eq!(cell(&json!("plain")), "plain");
        assert!(local_time("2026-01-01T00:00:00Z").is_some());
        assert_eq!(local_time("2026-01-01"), None);
    }

    #[test]
    fn tables_align_on_the_widest_cell() {
        let out = aligned(
            vec!["NAME".into(), "STATE".into()],
            &[
                vec!["vm1".into(), "Configured".into()],
                vec!["a-long-name".into(), "-".into()],
            ],
        );
        assert_eq!(
            out,
            "NAME         STATE\nvm1          Configured\na-long-name  -\n"
        );
    }
}
