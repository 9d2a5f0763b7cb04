//! Statements whose text depends on their input (IN lists, multi-row inserts, optional
//! filters), built like `sqlx::QueryBuilder`: text and arguments grow together, and each bound
//! value gets the next placeholder. The placeholders are `$1`, `$2`, …, which both engines
//! accept; sqlx's own builder writes `?` for the `Any` driver, which PostgreSQL rejects.

use crate::{StoreError, StoreResult};
use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, FromRow, Type};
use std::fmt::Display;

/// A statement under construction.
#[derive(Default)]
pub(crate) struct SqlBuilder {
    sql: String,
    args: AnyArguments,
    /// The first value that could not be bound; reported when the statement is built.
    unbound: Option<String>,
}

impl SqlBuilder {
    /// A statement starting with `sql`.
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            ..Self::default()
        }
    }

    /// Puts SQL text before the statement (`EXPLAIN `); the placeholders keep their numbers.
    pub(crate) fn prepend(&mut self, sql: &str) -> &mut Self {
        self.sql.insert_str(0, sql);
        self
    }

    /// Appends SQL text (never a value from outside: bind those with [`Self::push_bind`]).
    pub(crate) fn push(&mut self, sql: impl Display) -> &mut Self {
        use std::fmt::Write;
        let _ = write!(self.sql, "{sql}");
        self
    }

    /// Binds a value and appends its placeholder.
    pub(crate) fn push_bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any>,
    {
        self.bind(value);
        let n = self.args.len();
        self.push(format_args!("${n}"))
    }

    /// Binds a value without writing its placeholder: for a statement whose text already holds
    /// `$1`, `$2`, … in the order of the binds.
    pub(crate) fn bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any>,
    {
        if let Err(e) = self.args.add(value)
            && self.unbound.is_none()
        {
            self.unbound = Some(e.to_string());
        }
        self
    }

    /// A list whose items are separated by `separator`.
    pub(crate) fn separated(&mut self, separator: &'static str) -> Separated<'_> {
        Separated {
            builder: self,
            separator,
            first: true,
        }
    }

    /// Appends `(a, b, …), (c, d, …)`: one parenthesized tuple per item, its values pushed by
    /// `push_tuple`.
    pub(crate) fn push_tuples<I, F>(&mut self, tuples: I, mut push_tuple: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(Separated<'_>, I::Item),
    {
        for (i, tuple) in tuples.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push("(");
            push_tuple(self.separated(", "), tuple);
            self.push(")");
        }
        self
    }

    fn finish(self) -> StoreResult<(String, AnyArguments)> {
        match self.unbound {
            Some(e) => Err(StoreError::Other(format!("cannot bind an argument: {e}"))),
            None => Ok((self.sql, self.args)),
        }
    }

    /// The same statement after `prefix` (such as `EXPLAIN `), with the same arguments.
    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        self.sql.insert_str(0, prefix);
        self
    }

    /// The statement, to execute.
    pub(crate) fn build(self) -> StoreResult<sqlx::query::Query<'static, Any, AnyArguments>> {
        let (sql, args) = self.finish()?;
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(sql), args))
    }

    /// The statement, answering rows of type `T`.
    pub(crate) fn build_query_as<T>(
        self,
    ) -> StoreResult<sqlx::query::QueryAs<'static, Any, T, AnyArguments>>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        let (sql, args) = self.finish()?;
        Ok(sqlx::query_as_with(sqlx::AssertSqlSafe(sql), args))
    }

    /// The statement, answering one value per row.
    pub(crate) fn build_query_scalar<T>(
        self,
    ) -> StoreResult<sqlx::query::QueryScalar<'static, Any, T, AnyArguments>>
    where
        (T,): for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        let (sql, args) = self.finish()?;
        Ok(sqlx::query_scalar_with(sqlx::AssertSqlSafe(sql), args))
    }
}

/// Items of a list in a [`SqlBuilder`], separated (see [`SqlBuilder::separated`]).
pub(crate) struct Separated<'b> {
    builder: &'b mut SqlBuilder,
    separator: &'static str,
    first: bool,
}

impl Separated<'_> {
    fn next_item(&mut self) -> &mut SqlBuilder {
        if !self.first {
            self.builder.push(self.separator);
        }
        self.first = false;
        self.builder
    }

    /// Appends an item of SQL text.
    pub(crate) fn push(&mut self, sql: impl Display) -> &mut Self {
        self.next_item().push(sql);
        self
    }

    /// Appends an item that is one bound value.
    pub(crate) fn push_bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any>,
    {
        self.next_item().push_bind(value);
        self
    }

    /// Whether no item was appended.
    pub(crate) fn is_empty(&self) -> bool {
        self.first
    }
}

/// Appends `(v1, v2, …)` for the values, or `(NULL)` when there are none (an IN list that
/// matches nothing).
pub(crate) fn push_in_list<'t, T, I>(sql: &mut SqlBuilder, values: I)
where
    I: IntoIterator<Item = T>,
    T: Encode<'t, Any> + Type<Any>,
{
    sql.push("(");
    let mut list = sql.separated(", ");
    for v in values {
        list.push_bind(v);
    }
    if list.is_empty() {
        list.push("NULL");
    }
    sql.push(")");
}

/// Appends the conditions of a newest-first page over `{prefix}created_at` and `{prefix}id`:
/// made at or after `from`, before `to`, and after the cursor's item in that order.
pub(crate) fn push_page_conditions(
    sql: &mut SqlBuilder,
    prefix: &str,
    from: Option<jiff::Timestamp>,
    to: Option<jiff::Timestamp>,
    after: Option<&crate::Cursor>,
) {
    if let Some(from) = from {
        sql.push(format_args!(" AND {prefix}created_at >= "))
            .push_bind(crate::to_db(from));
    }
    if let Some(to) = to {
        sql.push(format_args!(" AND {prefix}created_at < "))
            .push_bind(crate::to_db(to));
    }
    if let Some(c) = after {
        // The first bound is implied by the second; it is there so the planner starts the
        // index walk at the cursor instead of filtering everything before it.
        sql.push(format_args!(" AND {prefix}created_at <= "))
            .push_bind(c.created_at)
            .push(format_args!(" AND ({prefix}created_at < "))
            .push_bind(c.created_at)
            .push(format_args!(" OR ({prefix}created_at = "))
            .push_bind(c.created_at)
            .push(format_args!(" AND {prefix}id < "))
            .push_bind(c.id.clone())
            .push("))");
    }
}

/// Appends the conditions of an oldest-first page over `{prefix}created_at` and `{prefix}id`:
/// after the cursor's item in that order.
pub(crate) fn push_after_oldest_first(
    sql: &mut SqlBuilder,
    prefix: &str,
    after: Option<&crate::Cursor>,
) {
    if let Some(c) = after {
        // As in `push_page_conditions`: the first bound starts the index walk at the cursor.
        sql.push(format_args!(" AND {prefix}created_at >= "))
            .push_bind(c.created_at)
            .push(format_args!(" AND ({prefix}created_at > "))
            .push_bind(c.created_at)
            .push(format_args!(" OR ({prefix}created_at = "))
            .push_bind(c.created_at)
            .push(format_args!(" AND {prefix}id > "))
            .push_bind(c.id.clone())
            .push("))");
    }
}

/// Appends the rest of a page of a subscription's (or one resource group's) objects in id
/// order after `after`, at most `limit`: the conditions on `{prefix}subscription`,
/// `{prefix}resource_group` and `{prefix}id`, the order and the limit, which the
/// `(subscription, id)` and `(subscription, resource_group, id)` indexes serve.
pub(crate) fn push_scope_page(
    sql: &mut SqlBuilder,
    prefix: &str,
    subscription: &str,
    resource_group: Option<&str>,
    after: Option<&str>,
    limit: usize,
) {
    sql.push(format_args!(" AND {prefix}subscription = "))
        .push_bind(subscription.to_owned());
    if let Some(rg) = resource_group {
        sql.push(format_args!(" AND {prefix}resource_group = "))
            .push_bind(rg.to_owned());
    }
    if let Some(after) = after {
        sql.push(format_args!(" AND {prefix}id > "))
            .push_bind(after.to_owned());
    }
    sql.push(format_args!(" ORDER BY {prefix}id"));
    push_limit(sql, limit);
}

/// Appends ` LIMIT n`.
pub(crate) fn push_limit(sql: &mut SqlBuilder, limit: usize) {
    sql.push(" LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
}
