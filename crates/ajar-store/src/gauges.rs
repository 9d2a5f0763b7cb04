//! Read-only counts for the server's `/metrics` gauges, taken at scrape time.

use crate::columns::NullableMicros;
use crate::rows::to_db;
use crate::{StoreResult, Tx};
use jiff::Timestamp;

/// What is open and who is connected, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Network ports granted right now: `status = Initiated` and `end_time > now`, the same
    /// rule as [`Tx::grants`] (a late scheduler never makes an ended port count as open).
    pub open_network_grants: u64,
    /// Role activations in state `Active`.
    pub active_role_requests: u64,
    /// Every agent by name, with the last time it polled (`None`: never).
    pub agents: Vec<(String, Option<Timestamp>)>,
    /// Protected ports that something other than ajar leaves open to everyone, over all
    /// machines, as their enforcement points last reported (a total kept as reports are
    /// stored: one row).
    pub standing_exposures: u64,
}

impl Tx {
    /// The counts behind the `/metrics` gauges at `now`. Reads only.
    pub async fn gauges(&mut self, now: Timestamp) -> StoreResult<Gauges> {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) AS n FROM request_ports WHERE status = 'Initiated' AND end_time > $1",
        )
        .bind(to_db(now))
        .fetch_one(self.c())
        .await?;
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) AS n FROM jit_requests WHERE kind = 'role' AND state = 'Active'",
        )
        .fetch_one(self.c())
        .await?;
        let agents: Vec<(String, NullableMicros)> =
            sqlx::query_as("SELECT name, last_seen FROM agents ORDER BY name")
                .fetch_all(self.c())
                .await?;
        let agents = agents
            .into_iter()
            .map(|(name, last_seen)| (name, last_seen.into()))
            .collect();
        let standing_exposures = self.standing_exposures().await?;
        Ok(Gauges {
            standing_exposures,
            open_network_grants: u64::try_from(open).unwrap_or(0),
            active_role_requests: u64::try_from(active).unwrap_or(0),
            agents,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{NewRequest, PolicyGuard, PortRow, RequestRow};
    use jiff::Timestamp;

    const POLICY: &str = "/subscriptions/s/resourceGroups/rg/jitNetworkAccessPolicies/p";

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[tokio::test]
    async fn open_grants_follow_end_times_not_the_scheduler() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let mut tx = store.write().await.unwrap();
        tx.put_policy(POLICY, "s", "rg", "p", "{}", &[], "e1", None, at(0))
            .await
            .unwrap();
        let req = RequestRow {
            id: "r".into(),
            policy_id: POLICY.into(),
            requestor: "alice".into(),
            justification: None,
            source_address: None,
            created_at: at(1_000),
        };
        // Two ports on different machines, ending at 2000 and 3000.
        let ports: Vec<PortRow> = [(0, "m1", 2_000), (1, "m2", 3_000)]
            .into_iter()
            .map(|(seq, m, end)| {
                PortRow::initiated(
                    "r",
                    seq,
                    format!("/subscriptions/s/resourceGroups/rg/machines/{m}"),
                    22,
                    "*".into(),
                    vec!["10.0.0.1".into()],
                    format!("{m}|22|*|10.0.0.1"),
                    at(end),
                )
            })
            .collect();
        let stored = tx
            .insert_requests(&[NewRequest {
                request: &req,
                ports: &ports,
                guard: PolicyGuard {
                    etag: "e1",
                    blocking_scopes: &[],
                },
            }])
            .await
            .unwrap();
        assert_eq!(stored, vec![true]);
        tx.commit_unrecorded().await.unwrap();

        let mut tx = store.read().await.unwrap();
        let open = |g: crate::Gauges| (g.open_network_grants, g.active_role_requests);
        assert_eq!(open(tx.gauges(at(1_500)).await.unwrap()), (2, 0));
        // Ports still `Initiated` in the table but past their end: not open.
        assert_eq!(open(tx.gauges(at(2_000)).await.unwrap()), (1, 0));
        assert_eq!(open(tx.gauges(at(3_000)).await.unwrap()), (0, 0));
        assert!(tx.gauges(at(0)).await.unwrap().agents.is_empty());
    }
}
