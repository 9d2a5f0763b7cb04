//! Whether JIT is switched on, per scope.

use crate::StoreResult;
use crate::columns::Flag;
use crate::rows::*;
use crate::tx::*;
use jiff::Timestamp;

impl Tx {
    /// Sets whether JIT is enabled for a scope.
    pub async fn put_jit_enabled(
        &mut self,
        scope: &str,
        enabled: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO jit_settings (scope, jit_enabled, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (scope) DO UPDATE SET jit_enabled = excluded.jit_enabled, updated_at = excluded.updated_at",
        )
        .bind(scope)
        .bind(i64::from(enabled))
        .bind(to_db(now))
        .execute(self.c())
        .await?;
        Ok(())
    }

    /// Whether JIT is enabled for a scope (true unless turned off).
    pub async fn jit_enabled(&mut self, scope: &str) -> StoreResult<bool> {
        let enabled: Option<Flag> =
            sqlx::query_scalar("SELECT jit_enabled FROM jit_settings WHERE scope = $1")
                .bind(scope)
                .fetch_optional(self.c())
                .await?;
        Ok(enabled.is_none_or(bool::from))
    }

    /// Every scope where JIT is turned off.
    pub async fn jit_disabled_scopes(&mut self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT scope FROM jit_settings WHERE jit_enabled = 0 ORDER BY scope",
        )
        .fetch_all(self.c())
        .await?)
    }
}
