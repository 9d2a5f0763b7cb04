//! What enforcement points report about the machines they guard: why one cannot enforce access
//! on a machine, and the protected ports something else leaves open to everyone (standing
//! exposures), with their total kept in one row for the metric.

use crate::StoreResult;
use crate::rows::to_db;
use crate::sql::{SqlBuilder, push_in_list};
use crate::tx::*;
use jiff::Timestamp;

/// Most values bound in one statement.
const CHUNK: usize = 500;

/// What was last reported about one machine.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EnforcementRow {
    /// The machine.
    pub machine_id: String,
    /// Why access cannot be enforced on it; `None` when it can.
    pub unsupported_reason: Option<String>,
    /// Its standing exposures as JSON (a sorted list, read by the server).
    pub exposures: String,
    /// How many exposures `exposures` holds.
    pub exposure_count: i64,
}

impl Tx {
    /// What was last reported about these machines (those with nothing reported are absent):
    /// one lookup by primary key per machine.
    pub async fn machine_enforcement(
        &mut self,
        machine_ids: &[&str],
    ) -> StoreResult<Vec<EnforcementRow>> {
        let mut out = Vec::new();
        for chunk in machine_ids.chunks(CHUNK) {
            let mut sql = SqlBuilder::new(
                "SELECT machine_id, unsupported_reason, exposures, exposure_count \
                 FROM machine_enforcement WHERE machine_id IN ",
            );
            push_in_list(&mut sql, chunk.iter().copied());
            let rows: Vec<EnforcementRow> = sql
                .build_query_as()?
                .persistent(false)
                .fetch_all(self.c())
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Replaces what is stored about a machine with `row` (`None`, or a row with neither a
    /// reason nor exposures: nothing to report, so no row), keeping the total of standing
    /// exposures. The caller writes only what changed.
    pub async fn set_machine_enforcement(
        &mut self,
        machine_id: &str,
        row: Option<&EnforcementRow>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let before: Option<i64> = sqlx::query_scalar(
            "DELETE FROM machine_enforcement WHERE machine_id = $1 RETURNING exposure_count",
        )
        .bind(machine_id)
        .fetch_optional(self.c())
        .await?;
        let row = row.filter(|r| r.unsupported_reason.is_some() || r.exposure_count > 0);
        if let Some(r) = row {
            sqlx::query(
                "INSERT INTO machine_enforcement \
                 (machine_id, unsupported_reason, exposures, exposure_count, updated_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(machine_id)
            .bind(&r.unsupported_reason)
            .bind(&r.exposures)
            .bind(r.exposure_count)
            .bind(to_db(now))
            .execute(self.c())
            .await?;
        }
        let delta = row.map_or(0, |r| r.exposure_count) - before.unwrap_or(0);
        self.add_standing_exposures(delta).await
    }

    /// Forgets what was reported about the machines an agent guards (it no longer guards
    /// them), keeping the total.
    pub(crate) async fn clear_enforcement_of_agent(&mut self, agent_id: &str) -> StoreResult<()> {
        let counts: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM machine_enforcement WHERE machine_id IN \
             (SELECT machine_id FROM agent_machines WHERE agent_id = $1) RETURNING exposure_count",
        )
        .bind(agent_id)
        .fetch_all(self.c())
        .await?;
        self.add_standing_exposures(-counts.iter().sum::<i64>())
            .await
    }

    /// Forgets what was reported about a machine (it is deleted), keeping the total.
    pub(crate) async fn clear_enforcement_of_machine(
        &mut self,
        machine_id: &str,
    ) -> StoreResult<()> {
        self.set_machine_enforcement(machine_id, None, Timestamp::UNIX_EPOCH)
            .await
    }

    async fn add_standing_exposures(&mut self, delta: i64) -> StoreResult<()> {
        if delta != 0 {
            sqlx::query(
                "UPDATE enforcement_totals SET standing_exposures = standing_exposures + $1 \
                 WHERE id = 1",
            )
            .bind(delta)
            .execute(self.c())
            .await?;
        }
        Ok(())
    }

    /// Standing exposures over all machines, as last reported: one row.
    pub async fn standing_exposures(&mut self) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT standing_exposures FROM enforcement_totals WHERE id = 1")
                .fetch_one(self.c())
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::EnforcementRow;
    use crate::{AgentRow, NewActivity, test_store};
    use jiff::Timestamp;

    const M1: &str = "/subscriptions/s/resourceGroups/g/machines/m1";
    const M2: &str = "/subscriptions/s/resourceGroups/g/machines/m2";

    fn row(machine: &str, reason: Option<&str>, count: i64) -> EnforcementRow {
        EnforcementRow {
            machine_id: machine.to_owned(),
            unsupported_reason: reason.map(str::to_owned),
            exposures: format!("[{count}]"),
            exposure_count: count,
        }
    }

    #[tokio::test]
    async fn the_total_follows_every_write_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(dir.path()).await;
        let now = Timestamp::from_second(1_000).unwrap();
        let mut tx = store.write().await.unwrap();
        for m in [M1, M2] {
            tx.put_machine(
                m,
                "s",
                "g",
                m.rsplit('/').next().unwrap(),
                "{}",
                Default::default(),
                now,
            )
            .await
            .unwrap();
        }
        tx.set_machine_enforcement(M1, Some(&row(M1, None, 2)), now)
            .await
            .unwrap();
        tx.set_machine_enforcement(M2, Some(&row(M2, Some("no group"), 3)), now)
            .await
            .unwrap();
        assert_eq!(tx.standing_exposures().await.unwrap(), 5);
        tx.set_machine_enforcement(M1, Some(&row(M1, None, 1)), now)
            .await
            .unwrap();
        assert_eq!(tx.standing_exposures().await.unwrap(), 4);
        // Nothing to report: no row.
        tx.set_machine_enforcement(M1, Some(&row(M1, None, 0)), now)
            .await
            .unwrap();
        assert_eq!(
            tx.machine_enforcement(&[M1, M2]).await.unwrap(),
            [row(M2, Some("no group"), 3)]
        );
        assert_eq!(tx.standing_exposures().await.unwrap(), 3);
        tx.set_machine_enforcement(M1, Some(&row(M1, None, 4)), now)
            .await
            .unwrap();
        tx.delete_machine(M1).await.unwrap();
        assert_eq!(tx.standing_exposures().await.unwrap(), 3);
        let agent = AgentRow {
            id: "a".into(),
            name: "a".into(),
            mode: "aws".into(),
            public_address: None,
            port_range: None,
            token_id: "t".into(),
            last_seen: None,
            version: None,
            applied_revision: None,
            revision: 0,
            machines: vec![M2.into()],
            address_prefixes: None,
            inventory_scope: Some("/subscriptions/s/resourceGroups/g".into()),
        };
        tx.insert_agent(&agent, now).await.unwrap();
        tx.delete_agent("a").await.unwrap();
        assert_eq!(tx.standing_exposures().await.unwrap(), 0);
        assert!(tx.machine_enforcement(&[M1, M2]).await.unwrap().is_empty());
        tx.commit_recorded(&NewActivity::new(now, "admin", "ajar.test/write", "/"))
            .await
            .unwrap();
    }
}
