//! The activity log and its CSV download.

use super::*;
use crate::html::{self, enc, field_error, page, table, time};
use crate::{Console, secure_headers};
use ajar_api::wire::ActivityRecord;
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
    let error = list.error();
    let rows: Vec<Vec<Markup>> = list
        .parse::<List<ActivityRecord>>()
        .map(|l| l.value)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            vec![
                html! { (r.id) },
                time(Some(&r.time)),
                html! { (r.principal) },
                html! { (r.action) },
                html! { span class={ "result " (r.result) } { (r.result) } },
                html! { (r.resource_id) },
            ]
        })
        .collect();
    let body = html! {
        form method="get" action="/activity" class="inline" {
            @for k in ACTIVITY_FILTERS {
                label for={ "f-" (k) } { (k) }
                input id={ "f-" (k) } name=(k) value=(one(&q, k).unwrap_or_default())
                    placeholder=[(*k == "from" || *k == "to").then_some("2026-11-25T00:00:00Z")];
            }
            button type="submit" { "Filter" }
        }
        p {
            a class="button" href={ "/activity.csv?" (qs) } download="ajar-activity.csv" {
                "Download as CSV"
            }
        }
        (field_error(&error, "scope"))
        @if let Some((m, t)) = &error {
            (html::message("error", &match t {
                Some(t) => format!("{m} ({t})"),
                None => m.clone(),
            }))
        }
        (table(
            "Activity, newest first (up to 100)",
            &["#", "Time", "Principal", "Action", "Result", "Resource"],
            &rows,
        ))
    };
    with_answer(
        page(list.status, "Activity", Some(&s), "/activity", body),
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
