//! Request figures for machine and application reads: what a list of configured machines shows
//! for each (requests approved lately, last access and user, connections open now).

use ajar_api::wire::{OpenConnection, RequestFigures};
use ajar_store::{Figures, GrantRow, StoreResult, Tx};
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;

/// The period "approved requests" counts over.
pub const PERIOD: SignedDuration = SignedDuration::from_hours(7 * 24);
/// The open connections a machine's figures list, at most (those that end first); the
/// machine's grants list has them all.
pub const LISTED_CONNECTIONS: i64 = 10;

/// Figures of the machines `ids` at `now`, by machine id (machines without any requests have
/// none): what one page of machines shows, read for that page alone.
pub async fn machines(
    tx: &mut Tx,
    ids: &[&str],
    now: Timestamp,
) -> StoreResult<HashMap<String, RequestFigures>> {
    let since = now.saturating_sub(PERIOD).unwrap_or(now);
    let mut out: HashMap<String, RequestFigures> = tx
        .figures_of_machines(ids, since)
        .await?
        .into_iter()
        .map(|(id, f)| (id, wire(f)))
        .collect();
    let (listed, counts) = tx.grants_of_machines(ids, now, LISTED_CONNECTIONS).await?;
    for g in listed {
        out.entry(g.port.machine_id.clone())
            .or_default()
            .open_connections
            .push(connection(&g));
    }
    for (machine, count) in counts {
        out.entry(machine).or_default().open_connection_count = count;
    }
    Ok(out)
}

/// Figures of the applications `ids` at `now`, by application id (applications without role
/// requests have none): what one page of applications shows, read for that page alone.
pub async fn applications(
    tx: &mut Tx,
    ids: &[&str],
    now: Timestamp,
) -> StoreResult<HashMap<String, RequestFigures>> {
    let since = now.saturating_sub(PERIOD).unwrap_or(now);
    Ok(tx
        .figures_of_applications(ids, since)
        .await?
        .into_iter()
        .map(|(id, f)| (id, wire(f)))
        .collect())
}

fn wire(f: Figures) -> RequestFigures {
    RequestFigures {
        approved_requests_last7_days: f.approved_since,
        last_access_at: f.last.as_ref().map(|(at, _)| *at),
        last_user: f.last.map(|(_, who)| who),
        open_connections: Vec::new(),
        open_connection_count: 0,
    }
}

fn connection(g: &GrantRow) -> OpenConnection {
    let p = &g.port;
    let connect_to = match (&p.connect_address, p.mapped_port) {
        (Some(addr), Some(port)) => Some(format!("{addr}:{port}")),
        _ => None,
    };
    OpenConnection {
        port: p.number,
        protocol: p.protocol.clone(),
        connect_to,
        source_address_prefixes: p.sources.clone(),
        requestor: g.requestor.clone(),
        end_time_utc: p.end_time,
    }
}
