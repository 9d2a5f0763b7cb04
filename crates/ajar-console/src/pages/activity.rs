//! The activity log and its CSV download.

use super::*;
use crate::html::{self, enc, escape, field_error, page, table, text, time};
use crate::{Console, secure_headers};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;

pub(super) const ACTIVITY_FILTERS: &[&str] =
    &["scope", "principal", "action", "result", "from", "to"];

pub(super) fn activity_query(q: &Form) -> String {
    ACTIVITY_FILTERS
        .iter()
        .filter_map(|k| one(q, k).map(|v| format!("{k}={}", enc(&v))))
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) async fn activity(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query(&parts);
    let qs = activity_query(&q);
    let list = c
        .call(
            &parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1/activity?top=100&{qs}"),
            None,
        )
        .await;
    let inputs: String = ACTIVITY_FILTERS
        .iter()
        .map(|k| {
            format!(
                "<label for=\"f-{k}\">{k}</label><input id=\"f-{k}\" name=\"{k}\" value=\"{}\"{}>",
                escape(&one(&q, k).unwrap_or_default()),
                if *k == "from" || *k == "to" {
                    " placeholder=\"2026-11-25T00:00:00Z\""
                } else {
                    ""
                }
            )
        })
        .collect();
    let mut body = format!(
        "<form method=\"get\" action=\"/activity\" class=\"inline\">{inputs}<button type=\"submit\">Filter</button></form>\
         <p><a class=\"button\" href=\"/activity.csv?{}\" download=\"ajar-activity.csv\">Download as CSV</a></p>{}",
        escape(&qs),
        field_error(&list.error(), "scope")
    );
    if let Some((m, t)) = list.error() {
        let at = t.map(|t| format!(" ({t})")).unwrap_or_default();
        body.push_str(&html::message("error", &format!("{m}{at}")));
    }
    let rows: Vec<Vec<String>> = list.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(&r["id"]),
                time(&r["time"]),
                text(&r["principal"]),
                text(&r["action"]),
                format!("<span class=\"result {0}\">{0}</span>", text(&r["result"])),
                text(&r["resourceId"]),
            ]
        })
        .collect();
    body.push_str(&table(
        "Activity, newest first (up to 100)",
        &["#", "Time", "Principal", "Action", "Result", "Resource"],
        &rows,
    ));
    with_answer(
        page(list.status, "Activity", Some(&s), "/activity", &body),
        &list,
    )
}

pub(super) async fn activity_csv(State(c): State<Console>, req: Request) -> Response {
    let (parts, s, _) = match signed_in(&c, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let qs = activity_query(&query(&parts));
    let mut resp = c
        .raw(
            &parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1/activity?format=csv&{qs}"),
            None,
        )
        .await;
    secure_headers(&mut resp);
    resp
}
