//! Printing answers: the API's JSON as is, or aligned tables with instants in local time.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use std::fmt::Display;

/// A table column, or a line of a one-object view: its header and how to show the value of
/// one item.
pub type Column<T> = (&'static str, fn(&T) -> String);

/// Prints JSON, pretty.
pub fn json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => crate::outln!("{s}"),
        Err(e) => eprintln!("ajar: cannot print the answer as JSON: {e}"),
    }
}

/// A value as a table cell: as it is written, with RFC 3339 instants in local time.
pub fn text(v: &impl Display) -> String {
    let s = v.to_string();
    local_time(&s).unwrap_or(s)
}

/// An optional value as a table cell: `-` when absent.
pub fn optional<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_owned(), text)
}

/// Values as one table cell: joined with commas, `-` when there are none.
pub fn list<T: Display>(items: &[T]) -> String {
    joined(items, text)
}

/// Objects (approvers, labels, …) as one table cell: each as compact JSON, joined with commas,
/// `-` when there are none.
pub fn objects<T: Serialize>(items: &[T]) -> String {
    joined(items, object)
}

/// An object as a table cell: compact JSON with its keys in alphabetical order.
pub fn object(v: &impl Serialize) -> String {
    // Through `serde_json::Value`, whose maps sort their keys, so a cell does not depend on
    // the order of a struct's fields.
    serde_json::to_value(v)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn joined<T>(items: &[T], cell: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.iter().map(cell).collect::<Vec<_>>().join(",")
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
pub fn table<T>(rows: &[T], columns: &[Column<T>]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, cell)| cell(r)).collect())
        .collect();
    crate::out!(
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
pub fn fields<T>(value: &T, fields: &[Column<T>]) {
    let rows: Vec<Vec<String>> = fields
        .iter()
        .map(|(name, cell)| vec![format!("{name}:"), cell(value)])
        .collect();
    let out = aligned(vec![String::new(), String::new()], &rows);
    // Drop the empty header line.
    crate::out!(
        "{}",
        out.split_once('\n').map(|(_, rest)| rest).unwrap_or("")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn cells_are_readable() {
        assert_eq!(optional::<String>(&None), "-");
        assert_eq!(list(&["a", "b"]), "a,b");
        assert_eq!(list::<&str>(&[]), "-");
        assert_eq!(text(&22), "22");
        assert_eq!(text(&"plain"), "plain");
        assert_eq!(
            object(&BTreeMap::from([("env", "test"), ("a", "b")])),
            r#"{"a":"b","env":"test"}"#
        );
        assert!(local_time("2026-01-01T00:00:00Z").is_some());
        assert_eq!(local_time("2026-01-01"), None);
        assert_eq!(
            text(&"2026-01-01T00:00:00Z"),
            local_time("2026-01-01T00:00:00Z").unwrap()
        );
    }

    #[test]
    fn objects_show_their_keys_in_order() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Approver {
            id: &'static str,
            display_name: &'static str,
        }
        assert_eq!(
            objects(&[Approver {
                id: "bob",
                display_name: "Bob"
            }]),
            r#"{"displayName":"Bob","id":"bob"}"#
        );
        assert_eq!(objects::<Approver>(&[]), "-");
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
