//! History and activity for callers who may read only part of the store: each sees exactly the
//! entries at the scopes they may read plus their own, in the same order and on the same pages
//! as a reader of everything filtered entry by entry; nothing of a neighbouring resource group
//! whose name starts alike (`rg10`, `rg1x`), nor of a same-named group in another subscription.

use crate::*;
use ajar_api::wire::{ActivityRecord, HistoryEntry, List};
use ajar_core::id::Scope;
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::json;

/// Resource groups with names that share prefixes, and one of the same name elsewhere.
const GROUPS: [&str; 5] = [
    "/subscriptions/s1/resourceGroups/rg1",
    "/subscriptions/s1/resourceGroups/rg10",
    "/subscriptions/s1/resourceGroups/rg1x",
    "/subscriptions/s1/resourceGroups/rg2",
    "/subscriptions/s2/resourceGroups/rg1",
];

/// In every group: a machine `vm` under the automatic policy `auto`, a machine `gated` under
/// the manually approved policy `gated`, and an application `crm` where `alice`, `eve` and
/// `carol` may ask for Contributor.
async fn fill(app: &TestApp) {
    for (i, rg) in GROUPS.iter().enumerate() {
        for (n, machine) in ["vm", "gated"].iter().enumerate() {
            let body = json!({"properties":{"os":"linux","addresses":[format!("10.{i}.{n}.4")]}});
            let r = call(
                &app.admin,
                Method::PUT,
                &format!("/api/v1{rg}/machines/{machine}"),
                Some(body),
            )
            .await;
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
        let auto = policy_body(&format!("{rg}/machines/vm"));
        let gated = manual_policy(
            &format!("{rg}/machines/gated"),
            json!([{"id":"bob","type":"user"}]),
            None,
        );
        for (name, body) in [("auto", auto), ("gated", gated)] {
            let r = call(
                &app.admin,
                Method::PUT,
                &format!("/api/v1{rg}/jitNetworkAccessPolicies/{name}"),
                Some(body),
            )
            .await;
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
        let r = call(
            &app.admin,
            Method::PUT,
            &format!("/api/v1{rg}/applications/crm"),
            Some(
                json!({"properties":{"jitAccessPolicy":{"jitApprovalMode":"ManualApprove",
                "jitApprovers":[{"id":"bob","type":"user"}]}}}),
            ),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        declare_roles_in(app, &format!("{rg}/applications/crm"), &format!("crm{i}")).await;
        for who in ["alice", "eve", "carol"] {
            let r = call(
                &app.admin,
                Method::PUT,
                &format!("/api/v1{rg}/applications/crm/eligibleRoles/{who}"),
                Some(json!({"principal":who,"roleDefinition":"Contributor"})),
            )
            .await;
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
    }
}

/// One request of each kind by `who` in `rg`: automatic network access, network access
/// awaiting approval, and a role activation.
async fn ask(client: &ajar_api::Client, who: &str, rg: &str, n: usize) {
    let port =
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":format!("192.0.2.{n}")});
    for (policy, machine) in [("auto", "vm"), ("gated", "gated")] {
        let r = call(
            client,
            Method::POST,
            &format!("/api/v1{rg}/jitNetworkAccessPolicies/{policy}/initiate"),
            Some(initiate_body(
                &format!("{rg}/machines/{machine}"),
                port.clone(),
            )),
        )
        .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    let r = call(
        client,
        Method::PUT,
        &format!("/api/v1{rg}/jitRequests/{who}-{n}"),
        Some(activation(&format!("{rg}/applications/crm"), who)),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

/// Every entry of `/api/v1/history{query}` for `client`, following next links with `top`.
async fn walk(client: &ajar_api::Client, query: &str, top: u32) -> Vec<HistoryEntry> {
    let sep = if query.is_empty() { "?" } else { "&" };
    let mut path = format!("/api/v1/history{query}{sep}top={top}");
    let mut seen = Vec::new();
    loop {
        let r = call(client, Method::GET, &path, None).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        let page: List<HistoryEntry> = r.json();
        assert!(page.value.len() <= top as usize);
        seen.extend(page.value);
        match page.next_link {
            Some(next) => path = next,
            None => return seen,
        }
    }
}

/// Whether `who`, reading at `scopes`, may see `e`: their own, or a role activation (or
/// approval-gated request) at a scope they read, or network access under a policy there.
fn sees(e: &HistoryEntry, who: &str, scopes: &[&str]) -> bool {
    let place = if e.id.starts_with('/') {
        &e.id
    } else {
        &e.target
    };
    let place = Scope::parse(place).unwrap();
    e.requestor == who
        || scopes
            .iter()
            .any(|s| Scope::parse(s).unwrap().contains(&place))
}

fn ids(entries: &[HistoryEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

#[tokio::test]
async fn partial_readers_see_exactly_their_scopes_and_their_own_on_every_page() {
    let app = TestApp::spawn().await;
    fill(&app).await;
    let rg1 = GROUPS[0];
    let policy10 = "/subscriptions/s1/resourceGroups/rg10/jitNetworkAccessPolicies/auto";
    let requester = |who| app.user(who, Some(("JitRequester", "/")));
    let (alice, eve) = (requester("alice").await, requester("eve").await);
    // carol reads rg1 and one machine of rg10 (where no history lives), and asks in rg2.
    let carol = requester("carol").await;
    assign(&app, "carol-rg1", "carol", "SecurityReader", rg1).await;
    let vm10 = "/subscriptions/s1/resourceGroups/rg10/machines/vm";
    assign(&app, "carol-vm10", "carol", "SecurityReader", vm10).await;
    // dave reads the requests of one policy; frank all of subscription s2; gina a subscription
    // without requests; nobody has no role.
    let dave = app.user("dave", Some(("Approver", policy10))).await;
    let frank = app
        .user("frank", Some(("Approver", "/subscriptions/s2")))
        .await;
    let gina = app
        .user("gina", Some(("SecurityReader", "/subscriptions/s3")))
        .await;
    let nobody = app.user("nobody", None).await;

    // Many requests everywhere, several at the same instant (ties are ordered by id).
    let mut n = 0;
    for round in 0..3 {
        for rg in GROUPS {
            for (client, who) in [(&alice, "alice"), (&eve, "eve")] {
                n += 1;
                ask(client, who, rg, n).await;
            }
        }
        n += 1;
        ask(&carol, "carol", GROUPS[3], n).await;
        if round < 2 {
            app.advance(SignedDuration::from_secs(1));
        }
    }

    let everything = walk(&app.admin, "", 100).await;
    assert_eq!(everything.len(), 3 * (GROUPS.len() * 2 + 1) * 3);
    for (client, who, scopes) in [
        (&carol, "carol", vec![rg1, vm10]),
        (&dave, "dave", vec![policy10]),
        (&frank, "frank", vec!["/subscriptions/s2"]),
        (&gina, "gina", vec!["/subscriptions/s3"]),
    ] {
        let expected: Vec<&HistoryEntry> = everything
            .iter()
            .filter(|e| sees(e, who, &scopes))
            .collect();
        for top in [1, 2, 7, 100] {
            let got = walk(client, "", top).await;
            assert_eq!(
                ids(&got),
                expected.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
                "{who}, top={top}"
            );
        }
        for query in [
            "?kind=role",
            "?kind=network",
            "?state=Pending",
            "?requester=eve",
        ] {
            let expected: Vec<String> = walk(&app.admin, query, 100)
                .await
                .into_iter()
                .filter(|e| sees(e, who, &scopes))
                .map(|e| e.id)
                .collect();
            let got = walk(client, query, 3).await;
            let got: Vec<String> = got.into_iter().map(|e| e.id).collect();
            assert_eq!(got, expected, "{who} {query}");
        }
    }

    // What those lists hold, said plainly.
    let of_carol = walk(&carol, "", 4).await;
    assert_eq!(of_carol.len(), 3 * 2 * 3 + 3 * 3, "rg1's 18 and her own 9");
    for e in &of_carol {
        let place = if e.id.starts_with('/') {
            &e.id
        } else {
            &e.target
        };
        assert!(
            place.starts_with(&format!("{rg1}/")) || e.requestor == "carol",
            "{place}"
        );
        for other in &GROUPS[1..] {
            assert!(
                !place.starts_with(&format!("{other}/")) || e.requestor == "carol",
                "{place}"
            );
        }
    }
    let of_dave = walk(&dave, "", 2).await;
    assert_eq!(of_dave.len(), 6, "the automatic requests under one policy");
    assert!(of_dave.iter().all(|e| e.target == policy10));
    let of_frank = walk(&frank, "", 5).await;
    assert_eq!(of_frank.len(), 18);
    assert!(of_frank.iter().all(|e| {
        let place = if e.id.starts_with('/') {
            &e.id
        } else {
            &e.target
        };
        place.starts_with("/subscriptions/s2/")
    }));
    assert!(
        walk(&gina, "", 5).await.is_empty(),
        "no access, nothing seen"
    );
    let r = call(&nobody, Method::GET, "/api/v1/history", None).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    // A root reader sees everything, in one walk as in pages; a state only automatic network
    // requests never have is walked past them to the end.
    assert_eq!(ids(&walk(&app.admin, "", 3).await), ids(&everything));
    let pending = walk(&app.admin, "?state=Pending", 100).await;
    assert_eq!(pending.len(), 66);
    assert_eq!(
        ids(&walk(&app.admin, "?state=Pending", 1).await),
        ids(&pending)
    );

    // Activity: only at a scope the caller may read, and only what is beneath it.
    let r = call(&carol, Method::GET, "/api/v1/activity", None).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    for scope in [GROUPS[1], GROUPS[2], GROUPS[4]] {
        let r = call(
            &carol,
            Method::GET,
            &format!("/api/v1/activity?scope={scope}"),
            None,
        )
        .await;
        assert_eq!(r.status, 403, "{scope}: {:?}", r.body);
    }
    let mut seen: Vec<ActivityRecord> = Vec::new();
    let mut path = format!("/api/v1/activity?scope={rg1}&top=5");
    loop {
        let page: List<ActivityRecord> = get_as(&carol, &path).await;
        seen.extend(page.value);
        match page.next_link {
            Some(next) => path = next,
            None => break,
        }
    }
    let all: List<ActivityRecord> = get_as(&app.admin, "/api/v1/activity?top=1000").await;
    let expected: Vec<i64> = all
        .value
        .iter()
        .filter(|r| r.resource_id == rg1 || r.resource_id.starts_with(&format!("{rg1}/")))
        .map(|r| r.id)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(seen.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
}
