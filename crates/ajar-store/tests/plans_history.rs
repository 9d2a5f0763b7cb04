//! History and activity read through indexes: the plan of every list query a page of history or
//! activity runs (`EXPLAIN QUERY PLAN` on SQLite; `EXPLAIN` with sequential scans off on
//! PostgreSQL, so the check is that an index path exists), and what a read of only some scopes
//! answers. Runs on SQLite, or with `AJAR_TEST_DB=postgres` on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use ajar_core::lifecycle::{ApprovalRule, Lifecycle, Start};
use ajar_core::principal::Principal;
use ajar_store::{
    ActivityFilter, Backend, Cursor, JitRequestFilter, JitRequestRow, Listing, NewRequest,
    PolicyGuard, PortRow, Readable, RequestFilter, RequestRow, RequestsOn, Store,
};
use jiff::{SignedDuration, Timestamp};

async fn store(dir: &std::path::Path) -> Store {
    if ajar_pgtest::enabled() {
        let url = tokio::task::spawn_blocking(ajar_pgtest::fresh_database)
            .await
            .unwrap();
        Store::open(&url).await.unwrap()
    } else {
        Store::open_sqlite(&dir.join("t.db")).await.unwrap()
    }
}

/// Resource groups whose names share a prefix, and one of the same name elsewhere.
const GROUPS: [(&str, &str); 4] = [("s1", "rg1"), ("s1", "rg10"), ("s1", "rg1x"), ("s2", "rg1")];

fn group(s: &str, g: &str) -> String {
    format!("/subscriptions/{s}/resourceGroups/{g}")
}

/// In every group: a policy, `per_group` network requests under it and as many role
/// activation requests, by alice and bob in turn, several at the same instant.
async fn fill(store: &Store, per_group: usize) {
    let at = |i: usize| Timestamp::from_second(1_000 + (i / 3) as i64).unwrap();
    let mut tx = store.write().await.unwrap();
    for (s, g) in GROUPS {
        let policy = format!("{}/jitNetworkAccessPolicies/p", group(s, g));
        tx.put_policy(
            &policy,
            s,
            g,
            "p",
            "{}",
            &[],
            "e1",
            None,
            Timestamp::UNIX_EPOCH,
        )
        .await
        .unwrap();
    }
    tx.commit_unrecorded().await.unwrap();
    for i in 0..per_group {
        let who = if i % 2 == 0 { "alice" } else { "bob" };
        let mut requests = Vec::new();
        for (s, g) in GROUPS {
            let rg = group(s, g);
            let id = format!("{s}-{g}-{i:03}");
            let request = RequestRow {
                id: id.clone(),
                policy_id: format!("{rg}/jitNetworkAccessPolicies/p"),
                requestor: who.into(),
                justification: None,
                source_address: None,
                created_at: at(i),
            };
            let port = PortRow::initiated(
                &id,
                0,
                format!("{rg}/machines/m"),
                22,
                "*".into(),
                vec!["10.0.0.1".into()],
                format!("{id}|22"),
                Timestamp::from_second(100_000).unwrap(),
            );
            requests.push((request, vec![port]));
        }
        let batch: Vec<NewRequest<'_>> = requests
            .iter()
            .map(|(request, ports)| NewRequest {
                request,
                ports,
                guard: PolicyGuard {
                    etag: "e1",
                    blocking_scopes: &[],
                },
            })
            .collect();
        let mut tx = store.write().await.unwrap();
        assert!(tx.insert_requests(&batch).await.unwrap().iter().all(|s| *s));
        for (s, g) in GROUPS {
            let rg = group(s, g);
            let lifecycle = Lifecycle::new(
                Principal::parse(who).unwrap(),
                Start::Now,
                SignedDuration::from_hours(1),
                &ApprovalRule::default(),
                at(i),
            );
            let row = JitRequestRow {
                id: format!("{rg}/jitRequests/r{i:03}"),
                name: format!("r{i:03}"),
                application_id: format!("{rg}/applications/crm"),
                kind: "role".into(),
                requester: who.into(),
                roles: vec!["Contributor".into()],
                justification: None,
                state: lifecycle.state,
                lifecycle,
                due: None,
                created_at: at(i),
                detail: None,
                extends: None,
                location: None,
                tags: None,
            };
            assert!(tx.insert_jit_request(&row, s, g).await.unwrap());
        }
        tx.commit_unrecorded().await.unwrap();
    }
}

/// Whether a row at a place (its id, or its policy's), by a requester, is expected.
type Sees = dyn Fn(&str, &str) -> bool;

/// Carol's view: her own requests (she has none), and resource group s1/rg1.
fn carol() -> Readable {
    Readable {
        own: Some("carol".into()),
        groups: vec![("s1".into(), "rg1".into())],
        ..Readable::default()
    }
}

#[tokio::test]
async fn a_read_of_some_scopes_answers_exactly_their_rows_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    fill(&store, 12).await;
    let mut tx = store.read().await.unwrap();
    let cases: Vec<(Readable, Box<Sees>)> = vec![
        (
            carol(),
            Box::new(|place: &str, _: &str| {
                place.starts_with("/subscriptions/s1/resourceGroups/rg1/")
            }),
        ),
        (
            Readable {
                own: Some("bob".into()),
                subscriptions: vec!["s2".into()],
                ..Readable::default()
            },
            Box::new(|place: &str, who: &str| {
                who == "bob" || place.starts_with("/subscriptions/s2/")
            }),
        ),
        (
            Readable {
                own: Some("dave".into()),
                resources: vec![
                    "/subscriptions/s1/resourceGroups/rg1x/jitNetworkAccessPolicies/p".into(),
                    "/subscriptions/s1/resourceGroups/rg10/jitRequests/r004".into(),
                ],
                ..Readable::default()
            },
            Box::new(|place: &str, _: &str| {
                place == "/subscriptions/s1/resourceGroups/rg1x/jitNetworkAccessPolicies/p"
                    || place == "/subscriptions/s1/resourceGroups/rg10/jitRequests/r004"
            }),
        ),
        (Readable::default(), Box::new(|_: &str, _: &str| false)),
    ];
    for (within, sees) in &cases {
        for limit in [1, 5, 100] {
            // Role activations, page after page.
            let all = tx
                .jit_request_history(JitRequestFilter::default(), None, 1000)
                .await
                .unwrap();
            let expected: Vec<&str> = all
                .iter()
                .filter(|r| sees(&r.id, &r.requester))
                .map(|r| r.id.as_str())
                .collect();
            let mut got = Vec::new();
            let mut after: Option<Cursor> = None;
            loop {
                let filter = JitRequestFilter {
                    within: Some(within),
                    ..JitRequestFilter::default()
                };
                let page = tx
                    .jit_request_history(filter, after.as_ref(), limit)
                    .await
                    .unwrap();
                let Some(last) = page.last() else { break };
                after = Some(Cursor {
                    created_at: last.created_at.as_microsecond(),
                    id: last.id.clone(),
                });
                got.extend(page.iter().map(|r| r.id.clone()));
            }
            assert_eq!(got, expected, "{within:?}, {limit}");

            // Network requests, page after page.
            let everywhere = |within| RequestFilter {
                on: RequestsOn::Everywhere,
                requestor: None,
                from: None,
                to: None,
                within,
            };
            let all = tx.requests(everywhere(None), None, 1000).await.unwrap();
            let expected: Vec<&str> = all
                .iter()
                .filter(|(r, _)| sees(&r.policy_id, &r.requestor))
                .map(|(r, _)| r.id.as_str())
                .collect();
            let mut got = Vec::new();
            let mut after: Option<Cursor> = None;
            loop {
                let page = tx
                    .requests(everywhere(Some(within)), after.as_ref(), limit)
                    .await
                    .unwrap();
                let Some((last, _)) = page.last() else { break };
                after = Some(Cursor {
                    created_at: last.created_at.as_microsecond(),
                    id: last.id.clone(),
                });
                got.extend(page.iter().map(|(r, _)| r.id.clone()));
            }
            assert_eq!(got, expected, "{within:?}, {limit}");
        }
    }
    // Carol's are rg1's only: not rg10's, rg1x's, nor s2's rg1's.
    let filter = JitRequestFilter {
        within: Some(&cases[0].0),
        ..JitRequestFilter::default()
    };
    let got = tx.jit_request_history(filter, None, 100).await.unwrap();
    assert_eq!(got.len(), 12);
    assert!(
        got.iter()
            .all(|r| r.id.starts_with("/subscriptions/s1/resourceGroups/rg1/"))
    );
}

/// Whether a plan walks `index` (or, given `a|b`, one of them), and never reads a whole table
/// without one.
fn assert_uses(plan: &[String], index: &str, what: &str) {
    assert!(
        index
            .split('|')
            .any(|index| plan.iter().any(|line| line.contains(index))),
        "{what}: expected {index} in {plan:#?}"
    );
    // SQLite says `SCAN t` for a walk of a table without an index (`SCAN t USING INDEX i` walks
    // an index in order; `SCAN arm0` reads the page of one part, already read through one).
    let tables = [
        "jit_requests",
        "requests",
        "r",
        "j",
        "activity",
        "a",
        "activity_scopes",
        "s",
    ];
    for line in plan {
        let mut words = line.split_whitespace();
        let scan = line.contains("Seq Scan")
            || (words.next() == Some("SCAN")
                && words.next().is_some_and(|t| tables.contains(&t))
                && !line.contains("INDEX")
                && !line.contains("PRIMARY KEY"));
        assert!(!scan, "{what}: a table scan in {plan:#?}");
    }
}

#[tokio::test]
async fn every_history_and_activity_query_walks_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    fill(&store, 3).await;
    let postgres = store.backend() == Backend::Postgres;
    let mut tx = store.read().await.unwrap();
    let cursor = Cursor {
        created_at: 1_000_000_000,
        id: "x".into(),
    };
    let parts = Readable {
        own: Some("carol".into()),
        subscriptions: vec!["s2".into()],
        groups: vec![("s1".into(), "rg1".into())],
        resources: vec![
            "/subscriptions/s1/resourceGroups/rg10/jitNetworkAccessPolicies/p".into(),
            "/subscriptions/s1/resourceGroups/rg10/jitRequests/r001".into(),
        ],
    };
    for after in [None, Some(&cursor)] {
        // Role activations: everything, one requester's, and each part of a partial read.
        let plan = tx
            .plan(Listing::JitRequestHistory(
                JitRequestFilter::default(),
                after,
                100,
            ))
            .await
            .unwrap();
        assert_uses(&plan, "jit_requests_by_time", "all role activations");
        let one = JitRequestFilter {
            requester: Some("alice"),
            ..JitRequestFilter::default()
        };
        let plan = tx
            .plan(Listing::JitRequestHistory(one, after, 100))
            .await
            .unwrap();
        assert_uses(&plan, "jit_requests_by_requester", "one requester's");
        let some = JitRequestFilter {
            within: Some(&parts),
            ..JitRequestFilter::default()
        };
        let plan = tx
            .plan(Listing::JitRequestHistory(some, after, 100))
            .await
            .unwrap();
        for index in [
            "jit_requests_by_requester",
            // A subscription's rows lead both indexes; PostgreSQL may take either.
            "jit_requests_by_subscription|jit_requests_by_group",
            "jit_requests_by_group",
        ] {
            assert_uses(&plan, index, "some scopes' role activations");
        }
        // By id: the primary key.
        let key = if postgres {
            "jit_requests_pkey"
        } else {
            "sqlite_autoindex_jit_requests_1"
        };
        assert_uses(&plan, key, "one role activation");

        // Network requests, the same way.
        let filter = |requestor, within| RequestFilter {
            on: RequestsOn::Everywhere,
            requestor,
            from: None,
            to: None,
            within,
        };
        let plan = tx
            .plan(Listing::Requests(filter(None, None), after, 100))
            .await
            .unwrap();
        assert_uses(&plan, "requests_by_time", "all network requests");
        let plan = tx
            .plan(Listing::Requests(filter(Some("alice"), None), after, 100))
            .await
            .unwrap();
        assert_uses(&plan, "requests_by_requestor", "one requestor's");
        let plan = tx
            .plan(Listing::Requests(filter(None, Some(&parts)), after, 100))
            .await
            .unwrap();
        for index in [
            "requests_by_requestor",
            "requests_by_subscription|requests_by_group",
            "requests_by_group",
            "requests_by_policy",
        ] {
            assert_uses(&plan, index, "some scopes' network requests");
        }
        // What an approval request opened is left out through `(kind, name)`.
        assert_uses(&plan, "jit_requests_by_name", "approval-gated left out");
    }

    // Activity: everything by `seq`, and one scope's through `(scope, seq)`.
    for before in [None, Some(10)] {
        let all = ActivityFilter::default();
        let plan = tx.plan(Listing::Activity(&all, before, 100)).await.unwrap();
        let key = if postgres {
            "activity_pkey"
        } else {
            "activity"
        };
        assert_uses(&plan, key, "all activity");
        let rg1 = group("s1", "rg1");
        let at = ActivityFilter {
            under: Some(&rg1),
            ..ActivityFilter::default()
        };
        let plan = tx.plan(Listing::Activity(&at, before, 100)).await.unwrap();
        let key = if postgres {
            "activity_scopes_pkey"
        } else {
            "sqlite_autoindex_activity_scopes_1"
        };
        assert_uses(&plan, key, "one scope's activity");
    }
}
