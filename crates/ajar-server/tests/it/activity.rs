//! The activity log: a record for every change and refusal, written with the change; queries,
//! paging, CSV export and tamper evidence.

use crate::*;
use ajar_api::wire::{
    AccessRequest, ActivityRecord, ActivityVerification, Application, List, Machine,
};
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};

async fn activity(client: &ajar_api::Client, query: &str) -> RawResponse {
    call(
        client,
        Method::GET,
        &format!("/api/v1/activity{query}"),
        None,
    )
    .await
}

fn records(r: &RawResponse) -> Vec<ActivityRecord> {
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json::<List<ActivityRecord>>().value
}

fn actions_of(rs: &[ActivityRecord]) -> Vec<String> {
    rs.iter().map(|r| r.action.clone()).collect()
}

async fn verify(app: &TestApp) -> ActivityVerification {
    get_as(&app.admin, "/api/v1/activity/verify").await
}

#[tokio::test]
async fn changes_and_refusals_are_recorded_with_who_where_and_why() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.2.0.1"}),
    )
    .await;
    assert_eq!(r.status, 202);
    let request_id = r.json::<AccessRequest>().id;

    // Everything in rg1, newest first: the initiate, then the policy, then the machines.
    let rg = records(&activity(&app.admin, &format!("?scope={RG}")).await);
    let got = actions_of(&rg);
    assert_eq!(got[0], "ajar.jit/policies/initiate/action");
    assert!(got.contains(&"ajar.jit/policies/write".to_owned()));
    assert_eq!(
        got.iter().filter(|a| *a == "ajar.machines/write").count(),
        2,
        "vm1 and win1, not vm2 in rg2: {got:?}"
    );
    let initiate = &rg[0];
    assert_eq!(initiate.principal, "admin");
    assert_eq!(initiate.source_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(initiate.resource_id, POLICY);
    assert_eq!(initiate.request_id.as_ref(), Some(&request_id));
    assert_eq!(initiate.result, "Succeeded");
    // Details are free-form JSON.
    assert_eq!(initiate.details["justification"], "debugging");
    assert_eq!(initiate.details["ports"][0]["number"], 22);
    // The scope filter does not leak a sibling resource group.
    assert!(rg.iter().all(|r| r.resource_id.starts_with(RG)));

    // A refusal, with the caller's request id as the correlation id.
    let (_, nobody_token) = {
        let c = app.user("nobody", None).await;
        let t = c.token().unwrap().to_owned();
        (c, t)
    };
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1{VM}", app.base))
        .bearer_auth(&nobody_token)
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let denied = records(&activity(&app.admin, "?result=Denied").await);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].principal, "nobody");
    assert_eq!(denied[0].action, "ajar.authorization/denied");
    assert_eq!(denied[0].correlation_id.as_deref(), Some("trace-42"));
    assert_eq!(denied[0].details["method"], "GET");
    assert!(
        denied[0].details["message"]
            .as_str()
            .unwrap()
            .contains("ajar.machines/read")
    );
    // Unauthenticated calls are not attributed to anyone and write nothing.
    let before = verify(&app).await.records;
    assert_eq!(get_status(&app, None, &format!("/api/v1{VM}")).await, 401);
    assert_eq!(verify(&app).await.records, before);

    // The scheduler's warning and expiry are recorded as the system's, for the same request;
    // a pass that finds the end already passed does not warn late.
    app.advance(SignedDuration::from_mins(50));
    app.tick().await;
    app.advance(SignedDuration::from_mins(10));
    app.tick().await;
    let mine = records(&activity(&app.admin, &format!("?requestId={request_id}")).await);
    assert_eq!(
        actions_of(&mine),
        vec![
            "ajar.jit/requests/expire",
            "ajar.jit/requests/expiryWarning",
            "ajar.jit/policies/initiate/action"
        ]
    );
    assert_eq!(mine[0].principal, "system:scheduler");
    let v = verify(&app).await;
    assert!(v.ok, "{v:?}");
    assert!(v.records >= 10);
    assert_eq!(v.head_hash.len(), 64);
}

async fn get_status(app: &TestApp, token: Option<&str>, path: &str) -> u16 {
    let client = app.client(token);
    call(&client, Method::GET, path, None).await.status
}

#[tokio::test]
async fn a_requests_lifecycle_is_recorded_step_by_step_with_its_deciders() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    require_approval(&app, json!([{"id":"bob","type":"user"}])).await;
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let bob = app.user("bob", Some(("Approver", RG))).await;
    let r = initiate(
        &alice,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.9.0.1"}),
    )
    .await;
    let id = r
        .json::<AccessRequest>()
        .approval_request_id
        .expect("approvalRequestId");
    let name = id.rsplit('/').next().unwrap().to_owned();
    assert_eq!(decide(&bob, &name, "approve").await.status, 200);
    app.advance(SignedDuration::from_mins(50));
    app.tick().await;
    app.advance(SignedDuration::from_mins(10));
    app.tick().await;
    let steps = records(&activity(&app.admin, &format!("?requestId={id}")).await);
    let mut got = actions_of(&steps);
    got.reverse();
    assert_eq!(
        got,
        vec![
            "ajar.jitRequests/create",
            "ajar.jitRequests/approve",
            "ajar.jitRequests/approved",
            "ajar.jitRequests/activate",
            "ajar.jitRequests/expiryWarning",
            "ajar.jitRequests/expire",
        ]
    );
    let by: Vec<&str> = steps.iter().rev().map(|s| s.principal.as_str()).collect();
    assert_eq!(
        by,
        vec![
            "alice",
            "bob",
            "bob",
            "bob",
            "system:scheduler",
            "system:scheduler"
        ]
    );
    assert_eq!(steps[4].details["reason"], "looked at the ticket");
    assert_eq!(steps[2].details["networkRequestId"], name.as_str());
    // Filters combine.
    let bobs = records(
        &activity(
            &app.admin,
            &format!("?requestId={id}&principal=bob&action=ajar.jitRequests/approve"),
        )
        .await,
    );
    assert_eq!(bobs.len(), 1);
}

#[tokio::test]
async fn pages_follow_the_cursor_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    for i in 0..7 {
        initiate(
            &app.admin,
            POLICY,
            json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":format!("10.3.0.{i}")}),
        )
        .await;
    }
    let all = records(&activity(&app.admin, "?top=1000").await);
    let mut seen = Vec::new();
    let mut next = Some("/api/v1/activity?top=3".to_owned());
    while let Some(path) = next {
        let r = call(&app.admin, Method::GET, &path, None).await;
        seen.extend(records(&r));
        next = r.json::<List<ActivityRecord>>().next_link;
    }
    let ids = |rs: &[ActivityRecord]| rs.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&seen), ids(&all));
    let expected: Vec<i64> = (1..=all.len() as i64).rev().collect();
    assert_eq!(ids(&all), expected, "newest first, every id once");
    // Time filters: from is inclusive, to exclusive.
    let now = app.now().to_string();
    assert_eq!(
        records(&activity(&app.admin, &format!("?from={now}")).await).len(),
        all.len()
    );
    assert!(records(&activity(&app.admin, &format!("?to={now}")).await).is_empty());
}

#[tokio::test]
async fn bad_queries_are_refused_with_the_parameter_named() {
    let app = TestApp::spawn().await;
    for (query, param) in [
        ("?result=Maybe", "result"),
        ("?from=yesterday", "from"),
        ("?to=2026-13-01T00:00:00Z", "to"),
        ("?format=xml", "format"),
        ("?skipToken=abc", "skipToken"),
        ("?skipToken=-4", "skipToken"),
        ("?top=0", "top"),
        ("?top=5000", "top"),
        ("?scope=not-a-scope", "scope"),
        ("?principal=", "principal"),
    ] {
        let r = activity(&app.admin, query).await;
        assert_eq!(r.status, 400, "{query}: {:?}", r.body);
        assert_eq!(target(&r).as_str(), param, "{query}");
    }
}

#[tokio::test]
async fn reading_the_log_needs_the_action_at_the_scope() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let reader = app.user("auditor", Some(("SecurityReader", RG))).await;
    let requester = app.user("alice", Some(("JitRequester", RG))).await;
    assert_eq!(activity(&reader, &format!("?scope={RG}")).await.status, 200);
    assert_eq!(activity(&reader, &format!("?scope={VM}")).await.status, 200);
    assert_eq!(
        activity(&reader, "").await.status,
        403,
        "the default scope is /"
    );
    assert_eq!(
        activity(&reader, &format!("?scope={RG2}")).await.status,
        403
    );
    assert_eq!(
        activity(&reader, &format!("?scope={RG}&format=csv"))
            .await
            .status,
        200
    );
    assert_eq!(
        activity(&requester, &format!("?scope={RG}")).await.status,
        403
    );
    let verify = |c: ajar_api::Client| async move {
        call(&c, Method::GET, "/api/v1/activity/verify", None)
            .await
            .status
    };
    assert_eq!(verify(reader.clone()).await, 403, "verify reads everything");
    assert_eq!(verify(app.client(None)).await, 401);
    assert_eq!(verify(app.admin.clone()).await, 200);
}

#[tokio::test]
async fn csv_export_survives_commas_quotes_and_line_breaks() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let hostile = "he said \"no, not now\",\r\nthen left; =HYPERLINK(\"x\")\n\tünïcödé, 🔑";
    let mut body = initiate_body(
        VM,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.4.0.1"}),
    );
    body["justification"] = json!(hostile);
    let r = call(
        &app.admin,
        Method::POST,
        &format!("/api/v1{POLICY}/initiate"),
        Some(body),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);

    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/activity?format=csv&scope={RG}",
            app.base
        ))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let text = resp.text().await.unwrap();
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header[0], "id");
    assert_eq!(header[9], "details");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let json_rows = records(&activity(&app.admin, &format!("?scope={RG}&top=1000")).await);
    assert_eq!(rows.len(), json_rows.len(), "the same selection as JSON");
    let initiate = rows
        .iter()
        .find(|r| &r[4] == "ajar.jit/policies/initiate/action")
        .unwrap();
    let details: Value = serde_json::from_str(&initiate[9]).unwrap();
    assert_eq!(details["justification"], hostile);
    // Every field reads back exactly as the JSON answer has it.
    for (csv_row, json_row) in rows.iter().zip(&json_rows) {
        assert_eq!(csv_row[0], json_row.id.to_string());
        assert_eq!(csv_row[10], json_row.hash);
        let d: Value = serde_json::from_str(&csv_row[9]).unwrap();
        assert_eq!(d, json_row.details);
    }
}

#[tokio::test]
async fn csv_export_of_many_records_streams_them_all() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    // More than one CSV page (1,000 records): refusals written straight to the store, since
    // repeated refusals over the API are counted rather than recorded one by one.
    let mut tx = app.state.store.write().await.unwrap();
    for i in 0..1_100 {
        let refusal =
            ajar_store::NewActivity::new(app.now(), "nobody", "ajar.authorization/denied", VM)
                .with_result(ajar_core::activity::Outcome::Denied)
                .with_details(json!({"n": i}));
        tx.record(&refusal).await.unwrap();
    }
    tx.commit().await.unwrap();
    let text = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/activity?format=csv&result=Denied",
            app.base
        ))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let ids: Vec<i64> = reader
        .records()
        .map(|r| r.unwrap()[0].parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 1_100);
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
}

#[tokio::test]
async fn editing_or_deleting_a_stored_record_is_caught_by_verify() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    for i in 0..3 {
        initiate(
            &app.admin,
            POLICY,
            json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":format!("10.5.0.{i}")}),
        )
        .await;
    }
    let v = verify(&app).await;
    assert!(v.ok, "{v:?}");
    let total = v.records;
    let first_initiate =
        records(&activity(&app.admin, "?action=ajar.jit/policies/initiate/action").await)
            .last()
            .unwrap()
            .id;
    let db = sqlx::AnyPool::connect(app.database_url()).await.unwrap();
    let exec = |sql: &'static str, seq: i64| {
        let db = db.clone();
        async move {
            let r = sqlx::query(sql).bind(seq).execute(&db).await.unwrap();
            assert_eq!(r.rows_affected(), 1, "{sql}");
        }
    };
    // A justification rewritten after the fact.
    exec(
        "UPDATE activity SET details = replace(details, 'debugging', 'routine') WHERE seq = $1",
        first_initiate,
    )
    .await;
    let v = verify(&app).await;
    assert_eq!(
        (v.ok, v.first_broken_id),
        (false, Some(first_initiate)),
        "{v:?}"
    );
    assert_eq!(v.records, first_initiate - 1);
    exec(
        "UPDATE activity SET details = replace(details, 'routine', 'debugging') WHERE seq = $1",
        first_initiate,
    )
    .await;
    assert!(verify(&app).await.ok, "restored, it verifies again");
    // A forged record given a correct hash of its own breaks the next record's link.
    let original_principal: String =
        sqlx::query_scalar("SELECT principal FROM activity WHERE seq = 2")
            .fetch_one(&db)
            .await
            .unwrap();
    exec(
        "UPDATE activity SET principal = 'mallory' WHERE seq = $1",
        2,
    )
    .await;
    let mut read = app.state.store.read().await.unwrap();
    let row = read.activity_in_order(1, 1).await.unwrap().remove(0);
    drop(read);
    assert_eq!((row.seq, row.record.principal.as_str()), (2, "mallory"));
    let rehashed = ajar_core::activity::link_hash(&row.prev_hash, &row.content());
    sqlx::query("UPDATE activity SET hash = $1 WHERE seq = 2")
        .bind(&rehashed)
        .execute(&db)
        .await
        .unwrap();
    let v = verify(&app).await;
    assert_eq!(v.first_broken_id, Some(3), "{v:?}");
    assert!(
        v.reason.as_deref().is_some_and(|r| r.contains("link")),
        "{v:?}"
    );
    // Put back, it verifies; then a record removed from the middle.
    let original_hash: String = sqlx::query_scalar("SELECT prev_hash FROM activity WHERE seq = 3")
        .fetch_one(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE activity SET principal = $1, hash = $2 WHERE seq = 2")
        .bind(&original_principal)
        .bind(&original_hash)
        .execute(&db)
        .await
        .unwrap();
    let v = verify(&app).await;
    assert!(v.ok, "{v:?}");
    exec("DELETE FROM activity WHERE seq = $1", total - 1).await;
    let v = verify(&app).await;
    assert_eq!(v.first_broken_id, Some(total), "{v:?}");
    assert!(
        v.reason.as_deref().is_some_and(|r| r.contains("missing")),
        "{v:?}"
    );
    db.close().await;
}

#[tokio::test]
async fn a_busy_machine_lists_the_ten_connections_ending_first_and_counts_them_all() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    // Twelve open ports on one machine, ending one minute apart (the last asked first).
    for i in 0..12 {
        initiate(
            &app.admin,
            POLICY,
            json!({"number":22,"duration":format!("PT{}M", 60 - i),"allowedSourceAddressPrefix":format!("10.8.0.{i}")}),
        )
        .await;
    }
    let m: Machine = get_as(&app.admin, &format!("/api/v1{VM}")).await;
    let f = m.properties.request_figures.expect("requestFigures");
    assert_eq!(f.open_connection_count, 12);
    let sources: Vec<&str> = f
        .open_connections
        .iter()
        .map(|o| o.source_address_prefixes[0].as_str())
        .collect();
    let expected: Vec<String> = (2..12).rev().map(|i| format!("10.8.0.{i}")).collect();
    assert_eq!(sources, expected, "the ten that end first, in order");
    // One ends: eleven left, still ten listed.
    app.advance(SignedDuration::from_mins(49) + SignedDuration::from_secs(30));
    app.tick().await;
    let m: Machine = get_as(&app.admin, &format!("/api/v1{VM}")).await;
    let f = m.properties.request_figures.expect("requestFigures");
    assert_eq!(
        (f.open_connection_count, f.open_connections.len()),
        (11, 10)
    );
}

#[tokio::test]
async fn machines_and_applications_show_their_request_figures() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    // Eight days ago, by alice; then two today by admin (one expired since).
    initiate(
        &alice,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.7.0.1"}),
    )
    .await;
    app.advance(SignedDuration::from_hours(8 * 24));
    initiate(
        &app.admin,
        POLICY,
        json!({"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"10.7.0.2"}),
    )
    .await;
    app.advance(SignedDuration::from_mins(30));
    initiate(
        &app.admin,
        POLICY,
        json!({"number":3389,"duration":"PT1H","allowedSourceAddressPrefix":"10.0.0.9"}),
    )
    .await;
    app.advance(SignedDuration::from_mins(45));
    app.tick().await;
    let m: Machine = get_as(&app.admin, &format!("/api/v1{VM}")).await;
    let f = m.properties.request_figures.expect("requestFigures");
    assert_eq!(f.approved_requests_last7_days, 2, "{f:?}");
    assert_eq!(f.last_user.as_deref(), Some("admin"));
    let last = app.now() - SignedDuration::from_mins(45);
    assert_eq!(f.last_access_at, Some(last));
    let open = &f.open_connections;
    assert_eq!(open.len(), 1, "the 22 grant ended: {f:?}");
    assert_eq!(open[0].port, 3389);
    assert_eq!(open[0].source_address_prefixes, vec!["10.0.0.9".to_owned()]);
    // In a list too; a machine without requests has zeros.
    let list = call(
        &app.admin,
        Method::GET,
        &format!("/api/v1{RG}/machines"),
        None,
    )
    .await;
    let machines = list.json::<List<Machine>>().value;
    let by_id = |id: &str| {
        let m = machines.iter().find(|m| m.id == id).unwrap();
        m.properties
            .request_figures
            .clone()
            .expect("requestFigures")
    };
    assert_eq!(
        json!(by_id(VM)),
        json!(f),
        "the same figures as the machine's own"
    );
    // The wire shape of zero figures: explicit nulls, no open connections.
    let win = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == VM_WIN)
        .unwrap();
    assert_eq!(
        win["properties"]["requestFigures"],
        json!({"approvedRequestsLast7Days":0,"lastAccessAt":null,"lastUser":null})
    );

    // An application: one approved activation by alice.
    let app_id = format!("{RG}/applications/crm");
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{app_id}"),
        Some(json!({"properties":{"publisherPrincipals":["acme"]}})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    declare_roles(&app, &app_id).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{app_id}/eligibleRoles/e1"),
        Some(json!({"principal":"alice","roleDefinition":"Contributor"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let body = json!({"properties":{
        "applicationResourceId": app_id,
        "jitAuthorizationPolicies":[{"principalId":"alice","roleDefinitionId":"Contributor"}],
        "jitSchedulingPolicy":{"type":"Once","duration":"PT1H"}}});
    let r = call(
        &alice,
        Method::PUT,
        &format!("/api/v1{RG}/jitRequests/r1"),
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let got: Application = get_as(&app.admin, &format!("/api/v1{app_id}")).await;
    let f = got.request_figures.expect("requestFigures");
    assert_eq!(f.approved_requests_last7_days, 1, "{f:?}");
    assert_eq!(f.last_user.as_deref(), Some("alice"));
    assert_eq!(f.last_access_at, Some(app.now()));
    let list: List<Application> = get_as(&app.admin, &format!("/api/v1{RG}/applications")).await;
    assert_eq!(
        json!(list.value[0].request_figures),
        json!(Some(f)),
        "the same figures as the application's own"
    );
}
