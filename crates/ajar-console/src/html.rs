//! HTML building: escaping, the page frame, and small pieces every page uses.

use crate::{Session, secure_headers};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as escaped text (`-` for null, lists joined).
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => escape(s),
        Value::Array(a) if a.is_empty() => "-".to_owned(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => escape(&other.to_string()),
    }
}

/// An instant as a `<time>` the script shows in the reader's local time.
pub fn time(v: &Value) -> String {
    match v.as_str() {
        Some(t) => format!("<time datetime=\"{0}\">{0}</time>", escape(t)),
        None => "-".to_owned(),
    }
}

/// The sections of the navigation.
pub const NAV: &[(&str, &str)] = &[
    ("/machines", "Machines"),
    ("/apps", "Applications"),
    ("/inbox", "Approvals"),
    ("/history", "History"),
    ("/activity", "Activity"),
];

/// A hidden CSRF field.
pub fn csrf(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        session.csrf()
    )
}

/// A whole page.
pub fn page(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    active: &str,
    body: &str,
) -> Response {
    let nav = match session {
        Some(s) => {
            let links: String = NAV
                .iter()
                .map(|(href, label)| {
                    let current = if *href == active {
                        " aria-current=\"page\""
                    } else {
                        ""
                    };
                    format!("<a href=\"{href}\"{current}>{label}</a>")
                })
                .collect();
            format!(
                "<nav aria-label=\"Sections\">{links}</nav>\
                 <form method=\"post\" action=\"/signout\" class=\"signout\">{}\
                 <span class=\"who\">{}</span> <button type=\"submit\">Sign out</button></form>",
                csrf(s),
                escape(&s.principal)
            )
        }
        None => String::new(),
    };
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · ajar</title><link rel=\"stylesheet\" href=\"/console/static/console.css\">\
         <script src=\"/console/static/console.js\" defer></script></head><body>\
         <header><a class=\"brand\" href=\"/machines\">ajar</a>{nav}</header>\
         <main id=\"main\"><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    );
    let mut resp = (status, Html(html)).into_response();
    secure_headers(&mut resp);
    resp
}

/// A message box (`kind`: `error` or `notice`).
pub fn message(kind: &str, text: &str) -> String {
    let role = if kind == "error" { "alert" } else { "status" };
    format!("<p class=\"{kind}\" role=\"{role}\">{}</p>", escape(text))
}

/// The API error shown next to `field` when its target names that field.
pub fn field_error(error: &Option<(String, Option<String>)>, field: &str) -> String {
    match error {
        Some((m, Some(t))) if names(t, field) => format!(
            "<p class=\"error field-error\" id=\"err-{field}\" role=\"alert\">{}</p>",
            escape(m)
        ),
        _ => String::new(),
    }
}

/// The API error as a summary, unless it was shown next to one of `fields`.
pub fn error_summary(error: &Option<(String, Option<String>)>, fields: &[&str]) -> String {
    match error {
        Some((_, Some(t))) if fields.iter().any(|f| names(t, f)) => String::new(),
        Some((m, _)) => message("error", m),
        None => String::new(),
    }
}

/// Whether an error target (a JSON path) concerns a form field.
fn names(target: &str, field: &str) -> bool {
    let last = target
        .rsplit('.')
        .next()
        .unwrap_or(target)
        .split('[')
        .next()
        .unwrap_or(target);
    last.eq_ignore_ascii_case(field)
        || target.eq_ignore_ascii_case(field)
        || (field == "ports" && last == "number")
        || (field == "minutes" && (last == "duration" || last == "endTimeUtc"))
        || (field == "source" && last.starts_with("allowedSourceAddressPrefix"))
}

/// A table.
pub fn table(caption: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}: none.</p>", escape(caption));
    }
    let head: String = headers
        .iter()
        .map(|h| format!("<th scope=\"col\">{h}</th>"))
        .collect();
    let body: String = rows
        .iter()
        .map(|r| {
            let cells: String = r.iter().map(|c| format!("<td>{c}</td>")).collect();
            format!("<tr>{cells}</tr>")
        })
        .collect();
    format!(
        "<div class=\"scroll\"><table><caption>{}</caption><thead><tr>{head}</tr></thead>\
         <tbody>{body}</tbody></table></div>",
        escape(caption)
    )
}

/// A URL query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(text(&serde_json::json!(["<b>", 2])), "&lt;b&gt;, 2");
        assert_eq!(text(&Value::Null), "-");
    }

    #[test]
    fn errors_land_next_to_their_field() {
        let e = Some((
            "too long".to_owned(),
            Some("virtualMachines[0].ports[0].duration".to_owned()),
        ));
        assert!(field_error(&e, "minutes").contains("too long"));
        assert!(field_error(&e, "reason").is_empty());
        assert!(error_summary(&e, &["minutes"]).is_empty());
        assert!(error_summary(&e, &["reason"]).contains("too long"));
        let j = Some(("x".to_owned(), Some("justification".to_owned())));
        assert!(field_error(&j, "justification").contains('x'));
    }
}
