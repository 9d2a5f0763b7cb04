//! The activity log's records and its verification.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One activity record: a change or a refused attempt, chained to the previous record by hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityRecord {
    /// Position in the log, from 1 without gaps.
    pub id: i64,
    /// When (RFC 3339, UTC).
    #[schema(value_type = String)]
    pub time: Timestamp,
    /// Who acted (`system:scheduler` for the scheduler, `agent:NAME` for agents).
    pub principal: String,
    /// The caller's address, when known.
    pub source_address: Option<String>,
    /// The action (an RBAC action, or `ajar.jitRequests/<step>` for a request's lifecycle).
    pub action: String,
    /// The object acted on.
    pub resource_id: String,
    /// The access request concerned, if any.
    pub request_id: Option<String>,
    /// The HTTP request id (`X-Request-Id`) that caused it, if any.
    pub correlation_id: Option<String>,
    /// `Succeeded`, `Denied` or `Failed`.
    pub result: String,
    /// Details (JSON).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// This record's hash (hex SHA-256 over the previous hash and this record).
    pub hash: String,
}

/// Answer of `GET /api/v1/activity/verify`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityVerification {
    /// Whether every record verified.
    pub ok: bool,
    /// How many records verified.
    pub records: i64,
    /// The first record that does not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_id: Option<i64>,
    /// What is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last verified record's hash: keep it elsewhere; a later verify that no longer
    /// reaches it shows records removed from the end.
    pub head_hash: String,
}
