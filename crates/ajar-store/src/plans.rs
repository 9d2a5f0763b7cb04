//! The plans of the statements that read a page of a list, so a test can check that each walks
//! an index instead of scanning a table (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on
//! PostgreSQL).

use crate::activity::{ActivityFilter, activity_sql};
use crate::jit_requests::history_sql;
use crate::requests::{RequestFilter, requests_sql};
use crate::sql::SqlBuilder;
use crate::{Backend, Cursor, JitRequestFilter, StoreResult, Tx};
use sqlx::Row;

/// The plan of one list statement.
#[derive(Debug, Clone)]
pub struct ListPlan {
    /// What the statement reads.
    pub name: String,
    /// The tables it must not scan whole.
    pub tables: &'static [&'static str],
    /// Whether its order must come from an index (a page read in order), not from a sort of
    /// everything it matched.
    pub ordered: bool,
    /// The plan, one line per node.
    pub lines: Vec<String>,
}

/// A statement to explain, named.
struct Case {
    name: String,
    tables: &'static [&'static str],
    ordered: bool,
    sql: SqlBuilder,
}

fn case(name: &str, tables: &'static [&'static str], ordered: bool, sql: SqlBuilder) -> Case {
    Case {
        name: name.to_owned(),
        tables,
        ordered,
        sql,
    }
}

/// Every list statement, with representative arguments: first pages and later pages, with and
/// without the optional filters.
fn cases() -> Vec<Case> {
    let after = Cursor {
        created_at: 1_700_000_000_000_000,
        id: "x".to_owned(),
    };
    let now = jiff::Timestamp::from_second(1_700_000_000).unwrap_or_default();
    let ids = [
        "/subscriptions/s/resourceGroups/g/machines/m1",
        "/subscriptions/s/resourceGroups/g/machines/m2",
    ];
    let apps = ["/subscriptions/s/resourceGroups/g/applications/a1"];
    let mut out = Vec::new();
    for (suffix, rg, page_after) in [
        ("subscription", None, None),
        ("resource group", Some("g"), None),
        ("subscription, later page", None, Some("/subscriptions/s/x")),
        (
            "resource group, later page",
            Some("g"),
            Some("/subscriptions/s/x"),
        ),
    ] {
        out.push(case(
            &format!("machines of a {suffix}"),
            &["machines", "machine_enforcement"],
            true,
            crate::machines::machines_page_sql("s", rg, page_after, 101),
        ));
        out.push(case(
            &format!("policies of a {suffix}"),
            &["policies"],
            true,
            crate::policies::policies_page_sql("s", rg, page_after, 101),
        ));
        out.push(case(
            &format!("applications of a {suffix}"),
            &["applications"],
            true,
            crate::applications::applications_page_sql("s", rg, page_after, 101),
        ));
    }
    out.push(case(
        "machine figures: counts",
        &["machine_request_hours"],
        false,
        crate::figures::machine_counts_sql(&ids, now),
    ));
    out.push(case(
        "machine figures: latest request",
        &["machine_figures"],
        false,
        crate::figures::machine_last_sql(&ids),
    ));
    out.push(case(
        "open grants of machines",
        &["request_ports", "requests"],
        false,
        crate::figures::grants_of_machines_sql(&ids, now, 10),
    ));
    out.push(case(
        "open grants of machines: counts",
        &["request_ports"],
        false,
        crate::figures::open_counts_sql(&ids, now),
    ));
    out.push(case(
        "application figures: counts",
        &["application_request_hours"],
        false,
        crate::figures::application_counts_sql(&apps, now),
    ));
    out.push(case(
        "application figures: latest request",
        &["application_figures"],
        false,
        crate::figures::application_last_sql(&apps),
    ));
    for page_after in [None, Some("e1")] {
        out.push(case(
            "eligible roles of an application",
            &["eligible_roles"],
            true,
            crate::applications::eligibilities_page_sql(apps[0], page_after, 101),
        ));
        out.push(case(
            "roles of an application",
            &["application_roles"],
            true,
            crate::application_roles::application_roles_page_sql(apps[0], page_after, 101),
        ));
        let principals = ["alice".to_owned(), "group:devs".to_owned()];
        let after = page_after.map(|id| (apps[0], id));
        for (what, principals) in [
            ("a caller", &principals[..1]),
            ("a caller and a group", &principals[..]),
        ] {
            // One principal: in order through (principal, application_id, id). Several: each
            // one's eligibilities through that index, then sorted (a caller's own, not a table's).
            out.push(case(
                &format!("eligible roles of {what}"),
                &["eligible_roles"],
                principals.len() == 1,
                crate::application_roles::eligibilities_of_page_sql(principals, None, after, 101),
            ));
            out.push(case(
                &format!("eligible roles of {what} at an application"),
                &["eligible_roles"],
                false,
                crate::application_roles::eligibilities_of_page_sql(
                    principals,
                    Some(apps[0]),
                    after,
                    101,
                ),
            ));
        }
        out.push(case(
            "agents",
            &["agents"],
            true,
            crate::agents::agents_page_sql(page_after, 101),
        ));
        out.push(case(
            "custom roles",
            &["role_definitions"],
            true,
            crate::rbac::roles_page_sql(page_after, 101),
        ));
        out.push(case(
            "groups",
            &["group_members"],
            false,
            crate::rbac::groups_page_sql(page_after, 101),
        ));
        out.push(case(
            "notification subscriptions",
            &["notification_subscriptions"],
            true,
            crate::notifications::notification_subscriptions_page_sql("s", page_after, 101),
        ));
        out.push(case(
            "subscriptions",
            &["machines", "policies", "applications"],
            false,
            crate::figures::subscriptions_page_sql(page_after, 101),
        ));
    }
    // What keeps a role from being deleted: each read through an index on the role's name or
    // the application, never the whole table.
    {
        use crate::application_roles::*;
        let mut sql = SqlBuilder::new(ELIGIBILITY_OF_APPLICATION_ROLE);
        sql.bind("Contributor").bind(apps[0]);
        out.push(case(
            "eligibility naming an application's role",
            &["eligible_roles"],
            false,
            sql,
        ));
        let mut sql = SqlBuilder::new(ELIGIBILITY_OF_AJAR_ROLE);
        sql.bind("Custom");
        out.push(case(
            "eligibility naming ajar's role",
            &["eligible_roles", "application_roles"],
            false,
            sql,
        ));
        let mut sql = SqlBuilder::new(ASSIGNMENT_OF_ROLE);
        sql.bind("Custom");
        out.push(case(
            "assignment naming a role",
            &["role_assignments"],
            false,
            sql,
        ));
        let mut sql = SqlBuilder::new(REQUESTS_UNDER_WAY_AT_APPLICATION);
        sql.bind(apps[0]);
        out.push(case(
            "requests under way at an application",
            &["jit_requests"],
            false,
            sql,
        ));
        out.push(case(
            "role requests under way",
            &["jit_requests"],
            false,
            SqlBuilder::new(ROLE_REQUESTS_UNDER_WAY),
        ));
    }
    for since in [None, Some(41)] {
        out.push(case(
            "an agent's machines (changed since a revision)",
            &["agent_machines", "machines", "machine_enforcement"],
            false,
            crate::agents::agent_machines_since_sql("a1", since),
        ));
    }
    let mut changed = SqlBuilder::new(crate::wakes::AGENTS_CHANGED_AFTER.replace("$1", ""));
    changed.push_bind(41_i64);
    out.push(case(
        "agents whose revision moved (another replica's change)",
        &["agents"],
        false,
        changed,
    ));
    out.push(case(
        "machines of a page's agents",
        &["agent_machines"],
        false,
        crate::agents::agent_machines_sql(&["a1", "a2"]),
    ));
    for cursor in [None, Some(&after)] {
        let later = if cursor.is_some() { ", later page" } else { "" };
        out.push(case(
            &format!("role requests of an application{later}"),
            &["jit_requests"],
            true,
            crate::jit_requests::history_sql(
                JitRequestFilter {
                    application: Some(apps[0]),
                    ..JitRequestFilter::default()
                },
                cursor,
                101,
            ),
        ));
        out.push(case(
            &format!("pending requests (the inbox){later}"),
            &["jit_requests"],
            true,
            crate::jit_requests::history_sql(
                JitRequestFilter {
                    state: Some("Pending"),
                    ..JitRequestFilter::default()
                },
                cursor,
                101,
            ),
        ));
        for principal in [None, Some("alice")] {
            let whose = if principal.is_some() {
                " of one principal"
            } else {
                ""
            };
            out.push(case(
                &format!("tokens{whose}{later}"),
                &["tokens"],
                true,
                crate::tokens::tokens_page_sql(principal, cursor, 101),
            ));
            out.push(case(
                &format!("role assignments{whose}{later}"),
                &["role_assignments"],
                true,
                crate::rbac::assignments_page_sql("/", principal, cursor, 101),
            ));
            out.push(case(
                &format!("role assignments beneath a scope{whose}{later}"),
                &["role_assignments"],
                true,
                crate::rbac::assignments_page_sql("/subscriptions/s", principal, cursor, 101),
            ));
        }
        for state in [None, Some("Pending")] {
            let which = if state.is_some() { " in one state" } else { "" };
            out.push(case(
                &format!("deliveries{which}{later}"),
                &["outbox"],
                true,
                crate::notifications::deliveries_page_sql("n", state, cursor, 101),
            ));
        }
    }
    out
}

impl Tx {
    /// The plan of every statement that reads a page of a list, for the plan check
    /// (`tests/plans.rs`). On PostgreSQL sequential scans, bitmap scans and sorts are turned
    /// off for this transaction first: the check asks whether a path through an index in the
    /// list's order exists, and on tiny test tables scanning and sorting would otherwise be
    /// cheaper. Use it in a write transaction that is rolled back.
    #[doc(hidden)]
    pub async fn list_plans(&mut self) -> StoreResult<Vec<ListPlan>> {
        let postgres = self.backend == Backend::Postgres;
        if postgres {
            for setting in ["enable_seqscan", "enable_bitmapscan", "enable_sort"] {
                sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL {setting} = off")))
                    .execute(self.c())
                    .await?;
            }
        }
        let mut out = Vec::new();
        for case in cases() {
            let prefix = if postgres {
                "EXPLAIN "
            } else {
                "EXPLAIN QUERY PLAN "
            };
            let rows = case
                .sql
                .prefixed(prefix)
                .build()?
                .fetch_all(self.c())
                .await?;
            let column = if postgres { 0 } else { 3 };
            let lines = rows
                .iter()
                .map(|r| r.try_get::<String, _>(column))
                .collect::<Result<_, _>>()?;
            out.push(ListPlan {
                name: case.name,
                tables: case.tables,
                ordered: case.ordered,
                lines,
            });
        }
        Ok(out)
    }
}

/// A list query whose plan [`Tx::plan`] answers, with the arguments of its method.
#[derive(Debug, Clone, Copy)]
pub enum Listing<'a> {
    /// [`Tx::jit_request_history`].
    JitRequestHistory(JitRequestFilter<'a>, Option<&'a Cursor>, u32),
    /// [`Tx::requests`] (the requests; their ports are then read by request id).
    Requests(RequestFilter<'a>, Option<&'a Cursor>, u32),
    /// [`Tx::activity`].
    Activity(&'a ActivityFilter<'a>, Option<i64>, u32),
}

impl Tx {
    /// How the database would run a list query, a line per step: the details of `EXPLAIN QUERY
    /// PLAN` on SQLite, the lines of `EXPLAIN` on PostgreSQL. On PostgreSQL sequential scans are
    /// off while it plans, so the plan shows whether an index can serve the query at all (on
    /// small tables a scan costs less and would be chosen instead).
    pub async fn plan(&mut self, listing: Listing<'_>) -> StoreResult<Vec<String>> {
        let mut sql = match listing {
            Listing::JitRequestHistory(filter, after, limit) => history_sql(filter, after, limit),
            Listing::Requests(filter, after, limit) => requests_sql(filter, after, limit),
            Listing::Activity(filter, before, limit) => activity_sql(filter, before, limit),
        };
        let postgres = self.backend == Backend::Postgres;
        if !postgres {
            sql.prepend("EXPLAIN QUERY PLAN ");
            let rows = sql.build()?.fetch_all(self.c()).await?;
            return Ok(rows
                .iter()
                .map(|r| r.try_get::<String, _>(3).unwrap_or_default())
                .collect());
        }
        sql.prepend("EXPLAIN ");
        sqlx::query("SET enable_seqscan = off")
            .execute(self.c())
            .await?;
        let plan: StoreResult<Vec<sqlx::any::AnyRow>> =
            async { Ok(sql.build()?.fetch_all(self.c()).await?) }.await;
        sqlx::query("RESET enable_seqscan")
            .execute(self.c())
            .await?;
        let rows = plan?;
        Ok(rows
            .iter()
            .map(|r| r.try_get::<String, _>(0).unwrap_or_default())
            .collect())
    }
}
