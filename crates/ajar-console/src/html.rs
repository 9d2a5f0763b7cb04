//! HTML building: the page frame, and small pieces every page uses. Pages are written with
//! maud's `html!`, which escapes every value spliced into them.

use crate::{Session, secure_headers};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use std::fmt::Display;

/// A value as text, or `-` when there is none.
pub fn or_dash(value: Option<impl Display>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Values as text separated by commas, or `-` when there are none.
pub fn joined(values: &[impl Display]) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An instant as a `<time>` the script shows in the reader's local time, or `-`.
pub fn time(at: Option<impl Display>) -> Markup {
    match at {
        Some(at) => {
            let at = at.to_string();
            html! { time datetime=(at) { (at) } }
        }
        None => html! { "-" },
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
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// The page for a system without randomness to give (no secret can be made safely).
pub fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        None,
        "",
        html! { (message("error", "The server cannot make a secret right now; try again later.")) },
    )
}

/// A whole page.
pub fn page(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    active: &str,
    body: Markup,
) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ajar" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                header {
                    a class="brand" href="/machines" { "ajar" }
                    @if let Some(s) = session {
                        nav aria-label="Sections" {
                            @for (href, label) in NAV {
                                a href=(href) aria-current=[(*href == active).then_some("page")] {
                                    (label)
                                }
                            }
                        }
                        form method="post" action="/signout" class="signout" {
                            (csrf(s))
                            span class="who" { (s.principal) }
                            " "
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    let mut resp = (status, Html(html.into_string())).into_response();
    secure_headers(&mut resp);
    resp
}

/// A message box (`kind`: `error` or `notice`).
pub fn message(kind: &str, text: &str) -> Markup {
    let role = if kind == "error" { "alert" } else { "status" };
    html! { p class=(kind) role=(role) { (text) } }
}

/// The API error shown next to `field` when its target names that field.
pub fn field_error(error: &Option<(String, Option<String>)>, field: &str) -> Markup {
    match error {
        Some((m, Some(t))) if names(t, field) => html! {
            p class="error field-error" id={ "err-" (field) } role="alert" { (m) }
        },
        _ => html! {},
    }
}

/// The API error as a summary, unless it was shown next to one of `fields`.
pub fn error_summary(error: &Option<(String, Option<String>)>, fields: &[&str]) -> Markup {
    match error {
        Some((_, Some(t))) if fields.iter().any(|f| names(t, f)) => html! {},
        Some((m, _)) => message("error", m),
        None => html! {},
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

/// A table, or a line saying it has no rows.
pub fn table(caption: &str, headers: &[&str], rows: &[Vec<Markup>]) -> Markup {
    html! {
        @if rows.is_empty() {
            p class="empty" { (caption) ": none." }
        } @else {
            div class="scroll" {
                table {
                    caption { (caption) }
                    thead { tr { @for h in headers { th scope="col" { (h) } } } }
                    tbody {
                        @for row in rows {
                            tr { @for cell in row { td { (cell) } } }
                        }
                    }
                }
            }
        }
    }
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
        let name = "<a href=\"x\">&</a>";
        assert_eq!(
            html! { p title=(name) { (name) } }.into_string(),
            "<p title=\"&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;\">\
             &lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;</p>"
        );
        assert_eq!(
            message("error", "<b>").into_string(),
            "<p class=\"error\" role=\"alert\">&lt;b&gt;</p>"
        );
        assert_eq!(joined(&["<b>", "2"]), "<b>, 2");
        assert_eq!(joined(&[] as &[&str]), "-");
        assert_eq!(or_dash(None::<u16>), "-");
        assert_eq!(time(None::<&str>).into_string(), "-");
        assert_eq!(
            time(Some("2026-01-01T00:00:00Z")).into_string(),
            "<time datetime=\"2026-01-01T00:00:00Z\">2026-01-01T00:00:00Z</time>"
        );
    }

    #[test]
    fn errors_land_next_to_their_field() {
        let e = Some((
            "too long".to_owned(),
            Some("virtualMachines[0].ports[0].duration".to_owned()),
        ));
        assert!(
            field_error(&e, "minutes")
                .into_string()
                .contains("too long")
        );
        assert!(field_error(&e, "reason").into_string().is_empty());
        assert!(error_summary(&e, &["minutes"]).into_string().is_empty());
        assert!(
            error_summary(&e, &["reason"])
                .into_string()
                .contains("too long")
        );
        let j = Some(("x".to_owned(), Some("justification".to_owned())));
        assert!(field_error(&j, "justification").into_string().contains('x'));
    }

    #[test]
    fn tables_escape_their_caption_and_say_when_empty() {
        assert_eq!(
            table("<Ports>", &["Port"], &[]).into_string(),
            "<p class=\"empty\">&lt;Ports&gt;: none.</p>"
        );
        let rows = vec![vec![html! { "22" }]];
        assert_eq!(
            table("Ports", &["Port"], &rows).into_string(),
            "<div class=\"scroll\"><table><caption>Ports</caption><thead><tr>\
             <th scope=\"col\">Port</th></tr></thead><tbody><tr><td>22</td></tr></tbody>\
             </table></div>"
        );
    }
}
