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

/// A length of time for people: `3 h`, `1 h 30 min`, `45 min`, `30 s` (the API's ISO 8601
/// `PT3H` is kept for what forms send).
pub fn human_duration(secs: i64) -> String {
    if secs <= 0 {
        return "0 min".to_owned();
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let parts: Vec<String> = [(h, "h"), (m, "min"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}"))
        .collect();
    parts.join(" ")
}

/// An access duration for people (see [`human_duration`]).
pub fn duration(d: ajar_core::duration::AccessDuration) -> String {
    human_duration(d.get().as_secs())
}

/// What a person typed as a duration (`2 h`, `90 min`, `1h30m`, `1 h 30 min`, or ISO 8601
/// `PT2H`) as the ISO 8601 the API takes. Text that is neither is passed on as typed, so the
/// API's error about it lands next to the field.
pub fn iso_duration(typed: &str) -> String {
    let t = typed.trim();
    if t.starts_with(['P', 'p']) {
        return t.to_ascii_uppercase();
    }
    let mut secs: i64 = 0;
    let mut rest = t;
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let Ok(n) = rest[..digits].parse::<i64>() else {
            return t.to_owned();
        };
        rest = rest[digits..].trim_start();
        let letters = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = match rest[..letters].to_ascii_lowercase().as_str() {
            "d" | "day" | "days" => 86_400,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            _ => return t.to_owned(),
        };
        rest = rest[letters..].trim_start();
        let Some(total) = n.checked_mul(unit).and_then(|x| secs.checked_add(x)) else {
            return t.to_owned();
        };
        secs = total;
        any = true;
    }
    if !any {
        return t.to_owned();
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut iso = "PT".to_owned();
    for (n, unit) in [(h, 'H'), (m, 'M'), (s, 'S')] {
        if n > 0 {
            iso.push_str(&format!("{n}{unit}"));
        }
    }
    if iso == "PT" {
        iso.push_str("0S");
    }
    iso
}

/// A resource id short enough for a table cell: ids of more than four segments keep their
/// last two (`…/machines/vm1`); the whole id is in the cell's tooltip.
pub fn short_id(id: &str) -> Markup {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    if segments.len() <= 4 {
        return html! { span class="id" { (id) } };
    }
    let tail = segments[segments.len() - 2..].join("/");
    html! { span class="id" title=(id) { "…/" (tail) } }
}

/// The `skipToken` of an API list's `nextLink`, which the console carries in its own links
/// so the next page is read from where this one ended.
pub fn skip_token(next_link: Option<&str>) -> Option<String> {
    let (_, query) = next_link?.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "skipToken")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// Links between the pages of a list: `first` (the list's own address with its filters) when
/// this is not the first page, and the next page when the API said there is one.
pub fn pager(first: &str, skip: Option<&str>, next: Option<&str>) -> Markup {
    let join = if first.contains('?') { '&' } else { '?' };
    html! {
        @if skip.is_some() || next.is_some() {
            nav class="pager" aria-label="Pages" {
                @if skip.is_some() { a href=(first) { "First page" } }
                @if let Some(token) = next {
                    a href={ (first) (join) "skip=" (enc(token)) } rel="next" { "Next page" }
                }
            }
        }
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
            // Focusable and named, so a table wider than the window scrolls from the keyboard.
            div class="scroll" tabindex="0" role="region" aria-label=(caption) {
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
    fn durations_read_as_people_write_them() {
        assert_eq!(human_duration(3 * 3600), "3 h");
        assert_eq!(human_duration(5400), "1 h 30 min");
        assert_eq!(human_duration(45 * 60), "45 min");
        assert_eq!(human_duration(30), "30 s");
        assert_eq!(human_duration(24 * 3600), "24 h");
        assert_eq!(human_duration(0), "0 min");
        let three = ajar_core::duration::AccessDuration::parse("PT3H").unwrap();
        assert_eq!(duration(three), "3 h");
        for (typed, iso) in [
            ("2 h", "PT2H"),
            ("90 min", "PT1H30M"),
            ("1h30m", "PT1H30M"),
            ("1 h 30 min", "PT1H30M"),
            ("pt2h", "PT2H"),
            ("PT8H", "PT8H"),
            ("1 day", "PT24H"),
        ] {
            assert_eq!(iso_duration(typed), iso, "{typed}");
        }
        // Not a duration: passed on as typed, for the API to explain.
        for typed in ["soon", "2 fortnights", "h", ""] {
            assert_eq!(iso_duration(typed), typed.trim(), "{typed}");
        }
    }

    #[test]
    fn long_ids_are_shortened_with_the_whole_id_at_hand() {
        assert_eq!(
            short_id("/subscriptions/s1/resourceGroups/rg1/machines/vm1").into_string(),
            "<span class=\"id\" title=\"/subscriptions/s1/resourceGroups/rg1/machines/vm1\">…/machines/vm1</span>"
        );
        assert_eq!(
            short_id("/tokens/abc").into_string(),
            "<span class=\"id\">/tokens/abc</span>"
        );
    }

    #[test]
    fn pages_follow_the_next_link() {
        assert_eq!(
            skip_token(Some("/api/v1/history?kind=role&top=2&skipToken=17.a%2Fb")).as_deref(),
            Some("17.a/b")
        );
        assert_eq!(skip_token(Some("/api/v1/history?top=2")), None);
        assert_eq!(skip_token(None), None);
        assert!(pager("/history", None, None).into_string().is_empty());
        let first = pager("/history?kind=role", None, Some("17.a/b")).into_string();
        assert!(
            first.contains("href=\"/history?kind=role&amp;skip=17.a%2Fb\"")
                && !first.contains("First page"),
            "{first}"
        );
        let last = pager("/activity", Some("5"), None).into_string();
        assert!(
            last.contains("First page") && !last.contains("Next page"),
            "{last}"
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
            "<div class=\"scroll\" tabindex=\"0\" role=\"region\" aria-label=\"Ports\"><table><caption>Ports</caption><thead><tr>\
             <th scope=\"col\">Port</th></tr></thead><tbody><tr><td>22</td></tr></tbody>\
             </table></div>"
        );
    }
}
