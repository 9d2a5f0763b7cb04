//! The activity log: `GET /api/v1/activity` (JSON pages, or the whole selection streamed as
//! RFC 4180 CSV) and `GET /api/v1/activity/verify` (the hash chain checked from the start).

use super::instant;
use super::paging::{Page, TIME_ORDERED_DEFAULT};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use ajar_api::ErrorCode;
use ajar_api::wire::{ActivityRecord, ActivityVerification, List};
use ajar_core::activity::{ChainCheck, Outcome};
use ajar_core::id::Scope;
use ajar_core::rbac::actions;
use ajar_store::{ActivityFilter, ActivityRow, Store};
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use std::cmp::Reverse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_activity))
        .routes(routes!(verify_activity))
}

/// Filters of `GET /api/v1/activity`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityQuery {
    scope: Option<String>,
    principal: Option<String>,
    action: Option<String>,
    result: Option<String>,
    request_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// The activity log, newest first by sequence number.
pub type ActivityPage = Page<Reverse<i64>, TIME_ORDERED_DEFAULT>;

/// The query's filters, checked.
struct Selection {
    scope: Scope,
    principal: Option<String>,
    action: Option<String>,
    result: Option<String>,
    request_id: Option<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
}

impl Selection {
    fn parse(q: &ActivityQuery) -> AppResult<Self> {
        let scope = match &q.scope {
            None => Scope::Root,
            Some(s) => Scope::parse(s).map_err(|e| AppError::parameter("scope", e))?,
        };
        if let Some(r) = &q.result
            && Outcome::parse(r).is_none()
        {
            return Err(AppError::new(
                ErrorCode::InvalidParameter,
                "result must be Succeeded, Denied or Failed",
            )
            .at("result"));
        }
        for (name, value) in [
            ("principal", &q.principal),
            ("action", &q.action),
            ("requestId", &q.request_id),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.is_empty() || v.len() > 512)
            {
                return Err(AppError::new(
                    ErrorCode::InvalidParameter,
                    format!("{name} must be 1 to 512 characters"),
                )
                .at(name));
            }
        }
        Ok(Self {
            scope,
            principal: q.principal.clone(),
            action: q.action.clone(),
            result: q.result.clone(),
            request_id: q.request_id.clone(),
            from: instant(&q.from, "from")?,
            to: instant(&q.to, "to")?,
        })
    }

    fn filter(&self) -> (String, ActivityFilter<'_>) {
        let scope = self.scope.to_string();
        let filter = ActivityFilter {
            under: None,
            principal: self.principal.as_deref(),
            action: self.action.as_deref(),
            result: self.result.as_deref(),
            request_id: self.request_id.as_deref(),
            from: self.from,
            to: self.to,
        };
        (scope, filter)
    }
}

fn wire(r: ActivityRow) -> ActivityRecord {
    let a = r.record;
    ActivityRecord {
        id: r.seq,
        time: a.at,
        principal: a.principal,
        source_address: a.source_address,
        action: a.action,
        resource_id: a.resource_id,
        request_id: a.request_id,
        correlation_id: a.correlation_id,
        result: a.result,
        details: serde_json::from_str(&a.details).unwrap_or(serde_json::Value::Null),
        hash: r.hash,
    }
}

#[utoipa::path(get, path = "/api/v1/activity", tag = "activity",
    params(("scope" = Option<String>, Query, description = "records about this scope or resource and everything beneath it (default /)"),
           ("principal" = Option<String>, Query), ("action" = Option<String>, Query),
           ("result" = Option<String>, Query, description = "Succeeded, Denied or Failed"),
           ("requestId" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query),
           ("format" = Option<String>, Query, description = "json (default, paged) or csv (everything selected, streamed)"),
           ("top" = Option<u32>, Query), ("skipToken" = Option<String>, Query)),
    responses((status = 200, body = List<ActivityRecord>)))]
pub async fn list_activity(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ActivityQuery>,
    page: ActivityPage,
) -> AppResult<Response> {
    let selection = Selection::parse(&q)?;
    caller.require(actions::ACTIVITY_READ, &selection.scope)?;
    match q.format.as_deref() {
        None | Some("json") => {}
        Some("csv") => return Ok(csv_response(state.store.clone(), selection)),
        Some(_) => {
            return Err(
                AppError::new(ErrorCode::InvalidParameter, "format must be json or csv")
                    .at("format"),
            );
        }
    }
    let (scope, mut filter) = selection.filter();
    filter.under = Some(&scope);
    let mut tx = state.store.read().await?;
    let before = page.after.map(|Reverse(seq)| seq);
    let rows = tx.activity(&filter, before, page.limit() as u32).await?;
    drop(tx);
    let (rows, next_link) = page.finish(rows, |r| Reverse(r.seq));
    Ok(Json(List {
        value: rows.into_iter().map(wire).collect(),
        next_link,
    })
    .into_response())
}

/// The CSV columns, in order.
pub const CSV_HEADER: &[&str] = &[
    "id",
    "time",
    "principal",
    "sourceAddress",
    "action",
    "resourceId",
    "requestId",
    "correlationId",
    "result",
    "details",
    "hash",
];

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, with quotes
/// doubled.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_line(fields: &[&str]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn csv_row(r: &ActivityRow) -> String {
    let (seq, a) = (r.seq.to_string(), &r.record);
    let at = a.at.to_string();
    csv_line(&[
        &seq,
        &at,
        &a.principal,
        a.source_address.as_deref().unwrap_or(""),
        &a.action,
        &a.resource_id,
        a.request_id.as_deref().unwrap_or(""),
        a.correlation_id.as_deref().unwrap_or(""),
        &a.result,
        &a.details,
        &r.hash,
    ])
}

/// Rows fetched per page while streaming.
const CSV_PAGE: u32 = 1000;

/// Streams every selected record as CSV, one page at a time, newest first: memory stays at one
/// page whatever the size of the log. A store error mid-stream ends the body early (the client
/// sees a truncated transfer, never a silently short file with a clean end).
fn csv_response(store: Store, selection: Selection) -> Response {
    enum Next {
        Header,
        Page(Option<i64>),
        Done,
    }
    let stream = futures_util::stream::unfold(
        (store, selection, Next::Header),
        |(store, selection, next)| async move {
            match next {
                Next::Done => None,
                Next::Header => {
                    let chunk = csv_line(CSV_HEADER);
                    Some((Ok(chunk), (store, selection, Next::Page(None))))
                }
                Next::Page(before) => {
                    let rows = async {
                        let (scope, mut filter) = selection.filter();
                        filter.under = Some(&scope);
                        let mut tx = store.read().await?;
                        tx.activity(&filter, before, CSV_PAGE).await
                    }
                    .await;
                    match rows {
                        Err(e) => {
                            tracing::warn!(error = %e, "activity export failed mid-stream");
                            Some((
                                Err(std::io::Error::other("store unavailable")),
                                (store, selection, Next::Done),
                            ))
                        }
                        Ok(rows) if rows.is_empty() => None,
                        Ok(rows) => {
                            let next = if rows.len() < CSV_PAGE as usize {
                                Next::Done
                            } else {
                                Next::Page(rows.last().map(|r| r.seq))
                            };
                            let chunk: String = rows.iter().map(csv_row).collect();
                            Some((Ok(chunk), (store, selection, next)))
                        }
                    }
                }
            }
        },
    );
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "text/csv; charset=utf-8; header=present",
            ),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"ajar-activity.csv\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/activity/verify", tag = "activity",
    responses((status = 200, body = ActivityVerification)))]
pub async fn verify_activity(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Json<ActivityVerification>> {
    caller.require(actions::ACTIVITY_READ, &Scope::Root)?;
    Ok(Json(verify(&state.store).await?))
}

/// Checks the whole chain from the first record, one page at a time.
pub async fn verify(store: &Store) -> AppResult<ActivityVerification> {
    let mut check = ChainCheck::default();
    let mut after = 0;
    loop {
        let mut tx = store.read().await?;
        let rows = tx.activity_in_order(after, CSV_PAGE).await?;
        drop(tx);
        let Some(last) = rows.last().map(|r| r.seq) else {
            break;
        };
        for r in &rows {
            if let Err(broken) = check.push(&r.content(), &r.prev_hash, &r.hash) {
                tracing::error!(
                    record = broken.seq,
                    reason = broken.reason,
                    "activity log broken"
                );
                return Ok(ActivityVerification {
                    ok: false,
                    records: check.records(),
                    first_broken_id: Some(broken.seq),
                    reason: Some(broken.reason.to_owned()),
                    head_hash: check.head().to_owned(),
                });
            }
        }
        after = last;
    }
    Ok(ActivityVerification {
        ok: true,
        records: check.records(),
        first_broken_id: None,
        reason: None,
        head_hash: check.head().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_quote_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_line(&["a", "", "c"]), "a,,c\r\n");
    }
}
