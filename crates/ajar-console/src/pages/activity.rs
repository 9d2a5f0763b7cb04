//! The activity log and its CSV download.

use super::*;
use crate::html::{self, enc, field_error, page, short_id, table, time};
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
    let paging = Paging::of(&q);
    let list = c
        .call(
            &parts,
            Some(&s.secret),
            Method::GET,
            &format!("/api/v1/activity?{}&{qs}", paging.api(100)),
            None,
        )
        .await;
    let error = list.error();
    let page_of = list.parse::<List<ActivityRecord>>();
    let rows: Vec<Vec<Markup>> = page_of
        .as_ref()
        .map(|l| l.value.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            vec![
                html! { (r.id) },
                time(Some(&r.time)),
                html! { (r.principal) },
                html! { span class="action" { (r.action) } },
                html! { span class={ "result " (r.result) } { (r.result) } },
                short_id(&r.resource_id),
            ]
        })
        .collect();
    let result = one(&q, "result").unwrap_or_default();
    let field = |k: &str| one(&q, k).unwrap_or_default();
    let base = if qs.is_empty() {
        "/activity".to_owned()
    } else {
        format!("/activity?{qs}")
    };
    let body = html! {
        form method="get" action="/activity" class="filters" {
            div class="field wide" {
                label for="f-scope" { "Scope" }
                input id="f-scope" name="scope" value=(field("scope")) placeholder="/subscriptions/s1";
            }
            div class="field" {
                label for="f-principal" { "Principal" }
                input id="f-principal" name="principal" value=(field("principal"));
            }
            div class="field wide" {
                label for="f-action" { "Action" }
                input id="f-action" name="action" value=(field("action")) placeholder="ajar.sessions/signin";
            }
            div class="field" {
                label for="f-result" { "Result" }
                select id="f-result" name="result" {
                    option value="" { "any" }
                    @for r in ["Succeeded", "Denied", "Failed"] {
                        option selected[result == r] { (r) }
                    }
                }
            }
            div class="field time" {
                label for="f-from" { "From (UTC)" }
                input id="f-from" name="from" value=(field("from")) placeholder="2026-11-25T00:00:00Z";
            }
            div class="field time" {
                label for="f-to" { "To (UTC)" }
                input id="f-to" name="to" value=(field("to")) placeholder="2026-11-26T00:00:00Z";
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
            "Activity, newest first",
            &["#", "Time", "Principal", "Action", "Result", "Resource"],
            &rows,
        ))
        (paging.links(&base, page_of.as_ref().and_then(|l| l.next_link.as_deref())))
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
