//! Every statement that reads a page of a list walks an index: none scans a table whole, and
//! those that read in the list's order get that order from an index, not from sorting all they
//! matched. Runs on SQLite, or with `AJAR_TEST_DB=postgres` on the throwaway PostgreSQL cluster
//! (with sequential scans turned off, so the check asks whether an index path exists).

use ajar_store::{Backend, ListPlan, Store};

async fn store(dir: &std::path::Path) -> ajar_store::StoreResult<Store> {
    if ajar_pgtest::enabled() {
        let url = tokio::task::spawn_blocking(ajar_pgtest::fresh_database)
            .await
            .unwrap_or_default();
        Store::open(&url).await
    } else {
        Store::open_sqlite(&dir.join("plans.db")).await
    }
}

/// A plan line without the tree drawing around it.
fn node(line: &str) -> &str {
    line.trim_start_matches(|c: char| c.is_whitespace() || "|`->".contains(c))
}

/// What is wrong with a plan, if anything.
fn faults(plan: &ListPlan, postgres: bool) -> Vec<String> {
    let mut out = Vec::new();
    for line in &plan.lines {
        let node = node(line);
        for table in plan.tables {
            let scanned = if postgres {
                node.contains(&format!("Seq Scan on {table} "))
                    || node.ends_with(&format!("Seq Scan on {table}"))
            } else {
                // `SCAN t USING INDEX i` walks an index (a page stops early); `SCAN t` reads the
                // whole table.
                node == format!("SCAN {table}") || node.starts_with(&format!("SCAN {table} ("))
            };
            if scanned {
                out.push(format!("scans {table} whole: {line}"));
            }
        }
        let sorts = if postgres {
            node.starts_with("Sort") || node.starts_with("Incremental Sort")
        } else {
            node.starts_with("USE TEMP B-TREE FOR ORDER BY")
        };
        if plan.ordered && sorts {
            out.push(format!("sorts instead of reading in index order: {line}"));
        }
    }
    out
}

#[tokio::test]
async fn every_list_reads_its_page_through_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await.unwrap();
    let postgres = store.backend() == Backend::Postgres;
    // A transaction that is rolled back: on PostgreSQL the plan check turns off sequential
    // scans for it alone.
    let mut tx = store.write().await.unwrap();
    let plans = tx.list_plans().await.unwrap();
    drop(tx);
    assert!(plans.len() > 40, "{} plans", plans.len());
    let mut wrong = Vec::new();
    for plan in &plans {
        assert!(!plan.lines.is_empty(), "{}: no plan", plan.name);
        for fault in faults(plan, postgres) {
            wrong.push(format!(
                "{}: {fault}\n  {}",
                plan.name,
                plan.lines.join("\n  ")
            ));
        }
    }
    if std::env::var_os("PLANS_SHOW").is_some() {
        for plan in &plans {
            println!("{}\n  {}", plan.name, plan.lines.join("\n  "));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_check_tells_a_scan_and_a_sort_from_an_index_walk() {
    let plan = |lines: &[&str]| ListPlan {
        name: "t".to_owned(),
        tables: &["tokens"],
        ordered: true,
        lines: lines.iter().map(|l| l.to_string()).collect(),
    };
    assert!(faults(&plan(&["SCAN tokens USING INDEX tokens_page"]), false).is_empty());
    assert!(faults(&plan(&["SEARCH tokens USING INDEX x (principal=?)"]), false).is_empty());
    assert_eq!(faults(&plan(&["SCAN tokens"]), false).len(), 1);
    assert_eq!(
        faults(
            &plan(&["SCAN tokens", "USE TEMP B-TREE FOR ORDER BY"]),
            false
        )
        .len(),
        2
    );
    assert!(
        faults(
            &plan(&[
                "Limit  (cost=0.15..8.17 rows=1 width=32)",
                "  ->  Index Scan using tokens_page on tokens  (cost=0.15..8.17 rows=1 width=32)"
            ]),
            true
        )
        .is_empty()
    );
    assert_eq!(
        faults(
            &plan(&[
                "Limit",
                "  ->  Sort  (cost=1..2)",
                "        ->  Seq Scan on tokens  (cost=0..1)"
            ]),
            true
        )
        .len(),
        2
    );
}
