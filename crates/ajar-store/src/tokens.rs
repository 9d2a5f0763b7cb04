//! API tokens and sessions, found by the hash of their secret.

use crate::StoreResult;
use crate::columns::to_json;
use crate::rows::*;
use crate::sql::{SqlBuilder, push_after_oldest_first, push_limit};
use crate::tx::*;
use jiff::Timestamp;

impl Tx {
    /// Stores a token by the hash of its secret.
    pub async fn insert_token(&mut self, t: &TokenRow, hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tokens (id, hash, principal, description, created_by, created_at, \
             expires_at, idp_groups, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&t.id)
        .bind(hash)
        .bind(&t.principal)
        .bind(&t.description)
        .bind(&t.created_by)
        .bind(to_db(t.created_at))
        .bind(t.expires_at.map(to_db))
        .bind(
            (!t.idp_groups.is_empty())
                .then(|| to_json(&t.idp_groups))
                .transpose()?,
        )
        .bind(&t.parent_id)
        .execute(self.c())
        .await?;
        Ok(())
    }

    /// The token whose secret hashes to `hash`.
    pub async fn token_by_hash(&mut self, hash: &str) -> StoreResult<Option<TokenRow>> {
        Ok(sqlx::query_as(
            "SELECT id, principal, description, created_by, created_at, expires_at, idp_groups, parent_id FROM tokens WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(self.c())
        .await?)
    }

    /// One token.
    pub async fn token(&mut self, id: &str) -> StoreResult<Option<TokenRow>> {
        Ok(sqlx::query_as(
            "SELECT id, principal, description, created_by, created_at, expires_at, idp_groups, parent_id FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.c())
        .await?)
    }

    /// At most `limit` tokens (only one principal's when given), oldest first, after the token
    /// at `after`: one page through `tokens_page` or `tokens_page_by_principal`.
    pub async fn tokens_page(
        &mut self,
        principal: Option<&str>,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Vec<TokenRow>> {
        Ok(tokens_page_sql(principal, after, limit)
            .build_query_as()?
            .fetch_all(self.c())
            .await?)
    }

    /// Deletes the tokens that have ended by `now` (expired sessions); answers how many.
    pub async fn delete_expired_tokens(&mut self, now: Timestamp) -> StoreResult<u64> {
        self.touched_access = true;
        let r = sqlx::query("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(to_db(now))
            .execute(self.c())
            .await?;
        Ok(r.rows_affected())
    }

    /// Deletes a token and every token made with it (and so on down) in one statement;
    /// answers the ids and principals of those deleted (none when it did not exist).
    pub async fn delete_token(&mut self, id: &str) -> StoreResult<Vec<(String, String)>> {
        self.touched_access = true;
        Ok(sqlx::query_as(
            "WITH RECURSIVE doomed(id) AS ( \
               SELECT id FROM tokens WHERE id = $1 \
               UNION SELECT t.id FROM tokens t JOIN doomed d ON t.parent_id = d.id) \
             DELETE FROM tokens WHERE id IN (SELECT id FROM doomed) RETURNING id, principal",
        )
        .bind(id)
        .fetch_all(self.c())
        .await?)
    }
}

/// The statement of [`Tx::tokens_page`].
pub(crate) fn tokens_page_sql(
    principal: Option<&str>,
    after: Option<&Cursor>,
    limit: usize,
) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "SELECT id, principal, description, created_by, created_at, expires_at, idp_groups, \
         parent_id FROM tokens WHERE 1 = 1",
    );
    if let Some(principal) = principal {
        sql.push(" AND principal = ")
            .push_bind(principal.to_owned());
    }
    push_after_oldest_first(&mut sql, "", after);
    sql.push(" ORDER BY created_at, id");
    push_limit(&mut sql, limit);
    sql
}
