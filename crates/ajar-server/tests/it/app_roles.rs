//! Applications' own actions and roles: declaring them, eligibility that must name a role that
//! exists, roles in use that cannot be deleted, `authorize` answering for an application's
//! actions only through its roles, and the caller's own eligible roles.

use crate::*;
use ajar_api::wire::{ApplicationActions, ApplicationRole, AuthorizeAnswer, EligibleRole, List};
use ajar_core::lifecycle::RequestState;
use ajar_testkit::TestApp;
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};

const CRM: &str = "/subscriptions/s1/resourceGroups/rg1/applications/crm";
const ERP: &str = "/subscriptions/s1/resourceGroups/rg2/applications/erp";

async fn application(app: &TestApp, id: &str, policy: Value) {
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{id}"),
        Some(json!({"properties":{"jitAccessPolicy":policy}})),
    )
    .await;
}

fn manual() -> Value {
    json!({"jitApprovalMode":"ManualApprove","jitApprovers":[{"id":"bob","type":"user"}]})
}

async fn ask(app: &TestApp, principal: &str, action: &str, scope: &str) -> AuthorizeAnswer {
    let body = json!({"principal":principal,"action":action,"scope":scope});
    call_ok_as::<AuthorizeAnswer>(&app.admin, Method::POST, "/api/v1/authorize", Some(body)).await
}

#[tokio::test]
async fn an_application_declares_actions_in_a_namespace_of_its_own() {
    let app = TestApp::spawn().await;
    application(&app, CRM, manual()).await;
    application(&app, ERP, manual()).await;
    let path = format!("/api/v1{CRM}/actions");
    // Nothing declared yet.
    let none: ApplicationActions = get_as(&app.admin, &path).await;
    assert!(none.namespace.is_empty() && none.actions.is_empty());

    let body = json!({"namespace":"crm","actions":["crm.orders/write","crm.orders/read"]});
    let r = call(&app.admin, Method::PUT, &path, Some(body.clone())).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let declared = r.json::<ApplicationActions>();
    assert_eq!(declared.actions, ["crm.orders/read", "crm.orders/write"]);
    assert_eq!(
        call(&app.admin, Method::PUT, &path, Some(body))
            .await
            .status,
        200
    );

    for (body, status, at) in [
        (
            json!({"namespace":"ajar","actions":["ajar.machines/read"]}),
            400,
            "namespace",
        ),
        (
            json!({"namespace":"crm","actions":["crm.orders/*"]}),
            400,
            "actions[0]",
        ),
        (
            json!({"namespace":"crm","actions":["crm.a","ajar.rbac/write"]}),
            400,
            "actions[1]",
        ),
        (json!({"namespace":"crm","actions":"crm.a"}), 400, ""),
        (json!({"namespace":"crm"}), 400, ""),
    ] {
        let r = call(&app.admin, Method::PUT, &path, Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {:?}", r.body);
        if !at.is_empty() {
            assert_eq!(target(&r), at, "{body}: {:?}", r.body);
        }
    }
    // Another application cannot take the namespace.
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{ERP}/actions"),
        Some(json!({"namespace":"crm","actions":["crm.orders/read"]})),
    )
    .await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (409, "namespace"),
        "{:?}",
        r.body
    );
    // Refusals changed nothing.
    let still: ApplicationActions = get_as(&app.admin, &path).await;
    assert_eq!(still.actions, declared.actions);
    // Unknown application.
    let r = call(
        &app.admin,
        Method::PUT,
        "/api/v1/subscriptions/s1/resourceGroups/rg1/applications/nope/actions",
        Some(json!({"namespace":"nope","actions":["nope.x"]})),
    )
    .await;
    assert_eq!(r.status, 404);
    // Deleting the application frees its namespace.
    call_ok(&app.admin, Method::DELETE, &format!("/api/v1{CRM}"), None).await;
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{ERP}/actions"),
        Some(json!({"namespace":"crm","actions":["crm.orders/read"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

#[tokio::test]
async fn roles_are_written_over_declared_actions_and_eligibility_names_a_role_that_exists() {
    let app = TestApp::spawn().await;
    application(&app, CRM, manual()).await;
    let role = |name: &str| format!("/api/v1{CRM}/roleDefinitions/{name}");
    // Before any action is declared, no pattern can match.
    let r = call(
        &app.admin,
        Method::PUT,
        &role("Contributor"),
        Some(json!({"actions":["crm.orders/*"]})),
    )
    .await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (400, "actions[0]"),
        "{:?}",
        r.body
    );
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{CRM}/actions"),
        Some(json!({"namespace":"crm","actions":["crm.orders/read","crm.orders/write","crm.invoices/read"]})),
    )
    .await;
    for (body, at) in [
        (json!({"actions":["crm.refunds/*"]}), "actions[0]"),
        (
            json!({"actions":["crm.orders/read","ajar.machines/read"]}),
            "actions[1]",
        ),
        (json!({"actions":["erp.orders/read"]}), "actions[0]"),
        (json!({"actions":[]}), "actions"),
        (
            json!({"actions":["crm.orders/read"],"description":"a\u{7}b"}),
            "description",
        ),
    ] {
        let r = call(
            &app.admin,
            Method::PUT,
            &role("Contributor"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (r.status, target(&r).as_str()),
            (400, at),
            "{body}: {:?}",
            r.body
        );
    }
    let r = call(
        &app.admin,
        Method::PUT,
        &role("bad name"),
        Some(json!({"actions":["*"]})),
    )
    .await;
    assert_eq!(r.status, 400);

    let r = call(
        &app.admin,
        Method::PUT,
        &role("Contributor"),
        Some(json!({"actions":["crm.orders/*"],"description":"Works on orders"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let c = r.json::<ApplicationRole>();
    assert_eq!(c.allowed_actions, ["crm.orders/read", "crm.orders/write"]);
    assert_eq!(c.id, format!("{CRM}/roleDefinitions/Contributor"));
    call_ok(
        &app.admin,
        Method::PUT,
        &role("Reader"),
        Some(json!({"actions":["*/read"]})),
    )
    .await;
    let list: List<ApplicationRole> =
        get_as(&app.admin, &format!("/api/v1{CRM}/roleDefinitions?top=1")).await;
    assert_eq!(list.value.len(), 1);
    assert_eq!(list.value[0].name, "Contributor");
    assert!(list.next_link.is_some());
    let reader: ApplicationRole = get_as(&app.admin, &role("Reader")).await;
    assert_eq!(
        reader.allowed_actions,
        ["crm.invoices/read", "crm.orders/read"]
    );

    // Eligibility names a role defined at the application, or one of ajar's.
    let eligible = |id: &str| format!("/api/v1{CRM}/eligibleRoles/{id}");
    for missing in ["NoSuchRole", "Owner2"] {
        let r = call(
            &app.admin,
            Method::PUT,
            &eligible("alice"),
            Some(json!({"principal":"alice","roleDefinition":missing})),
        )
        .await;
        assert_eq!(
            (r.status, target(&r).as_str()),
            (400, "roleDefinition"),
            "{:?}",
            r.body
        );
        assert!(error_of(&r).message.contains(missing));
    }
    let none: List<EligibleRole> = get_as(&app.admin, &format!("/api/v1{CRM}/eligibleRoles")).await;
    assert!(none.value.is_empty(), "a refused eligibility is not stored");
    for (id, role_name) in [("alice", "Contributor"), ("ops", "JitAdmin")] {
        let r = call(
            &app.admin,
            Method::PUT,
            &eligible(id),
            Some(json!({"principal":id,"roleDefinition":role_name})),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }

    // A role in use cannot be deleted, nor can its actions be declared away.
    let r = call(&app.admin, Method::DELETE, &role("Contributor"), None).await;
    assert_eq!(
        (r.status, code(&r)),
        (409, ErrorCode::Conflict),
        "{:?}",
        r.body
    );
    assert!(error_of(&r).message.contains("eligible role alice"));
    let r = call(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{CRM}/actions"),
        Some(json!({"namespace":"crm","actions":["crm.invoices/read"]})),
    )
    .await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (409, "actions"),
        "{:?}",
        r.body
    );
    // A role nothing uses can go.
    assert_eq!(
        call(&app.admin, Method::DELETE, &role("Reader"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        call(&app.admin, Method::GET, &role("Reader"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(&app.admin, Method::DELETE, &role("Reader"), None)
            .await
            .status,
        404
    );
}

/// The documented walk-through: an application declares its actions and a Contributor role, a
/// vendor group is eligible under manual approval, a member activates it, the approver
/// approves, and the application's own check says yes during the window and no after.
#[tokio::test]
async fn an_application_relies_on_authorize_for_its_own_actions() {
    let app = TestApp::spawn().await;
    application(&app, CRM, manual()).await;
    application(&app, ERP, manual()).await;
    declare_roles(&app, CRM).await;
    declare_roles(&app, ERP).await;
    call_ok(
        &app.admin,
        Method::PUT,
        "/api/v1/groups/vendor",
        Some(json!({"members":["alice"]})),
    )
    .await;
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{CRM}/eligibleRoles/vendor"),
        Some(json!({"principal":"group:vendor","roleDefinition":"Contributor"})),
    )
    .await;
    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let bob = app.user("bob", Some(("Approver", RG))).await;

    // alice sees the roles she may activate; bob sees none.
    let mine: List<EligibleRole> = get_as(&alice, "/api/v1/me/eligibleRoles").await;
    assert_eq!(mine.value.len(), 1);
    assert_eq!(
        (
            mine.value[0].application_id.as_str(),
            mine.value[0].role_definition.as_str()
        ),
        (CRM, "Contributor")
    );
    let at_erp: List<EligibleRole> = get_as(
        &alice,
        &format!("/api/v1/me/eligibleRoles?applicationId={ERP}"),
    )
    .await;
    assert!(at_erp.value.is_empty());
    let theirs: List<EligibleRole> = get_as(&bob, "/api/v1/me/eligibleRoles").await;
    assert!(theirs.value.is_empty());
    let r = call(
        &alice,
        Method::GET,
        "/api/v1/me/eligibleRoles?applicationId=crm",
        None,
    )
    .await;
    assert_eq!((r.status, target(&r).as_str()), (400, "applicationId"));

    let write = "crm.orders/write";
    assert!(
        !ask(&app, "alice", write, CRM).await.allowed,
        "eligible is not active"
    );
    let r = call(
        &alice,
        Method::PUT,
        &req_path("fix"),
        Some(json!({"properties":{"applicationResourceId":CRM,
            "jitAuthorizationPolicies":[{"principalId":"alice","roleDefinitionId":"Contributor"}],
            "jitSchedulingPolicy":{"type":"Once","duration":"PT1H"},"justification":"ticket 7"}})),
    )
    .await;
    assert_eq!(
        (r.status, state_of(&r)),
        (201, RequestState::Pending),
        "{:?}",
        r.body
    );
    assert!(
        !ask(&app, "alice", write, CRM).await.allowed,
        "pending is not active"
    );
    let r = decide(&bob, "fix", "approve").await;
    assert_eq!(state_of(&r), RequestState::Active, "{:?}", r.body);

    let during = ask(&app, "alice", write, CRM).await;
    assert!(during.allowed, "{during:?}");
    assert_eq!(during.via, Some(format!("elevation:{RG}/jitRequests/fix")));
    assert!(ask(&app, "alice", "crm.orders/read", CRM).await.allowed);
    // Only the application's declared actions, only on it, none of ajar's.
    assert!(!ask(&app, "alice", "crm.orders/delete", CRM).await.allowed);
    assert!(!ask(&app, "alice", "erp.orders/write", ERP).await.allowed);
    assert!(!ask(&app, "alice", "erp.orders/write", CRM).await.allowed);
    assert!(
        !ask(&app, "alice", "ajar.applications/write", CRM)
            .await
            .allowed
    );
    // ajar's own Owner (the administrator, `*` at `/`) answers for ajar's actions only.
    assert!(!ask(&app, "admin", write, CRM).await.allowed);
    assert!(
        ask(&app, "admin", "ajar.applications/write", CRM)
            .await
            .allowed
    );

    // While the elevation lasts its role cannot be deleted, even with the eligibility gone.
    call_ok(
        &app.admin,
        Method::DELETE,
        &format!("/api/v1{CRM}/eligibleRoles/vendor"),
        None,
    )
    .await;
    let role = format!("/api/v1{CRM}/roleDefinitions/Contributor");
    let r = call(&app.admin, Method::DELETE, &role, None).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert!(error_of(&r).message.contains("request"), "{:?}", r.body);

    app.advance(SignedDuration::from_hours(1));
    assert!(
        !ask(&app, "alice", write, CRM).await.allowed,
        "after the window"
    );
    app.tick().await;
    assert_eq!(
        call(&app.admin, Method::DELETE, &role, None).await.status,
        204
    );
}

#[tokio::test]
async fn ajar_roles_in_use_by_eligibilities_or_elevations_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    application(&app, CRM, json!({"jitApprovalMode":"AutoApprove"})).await;
    let custom = "/api/v1/roleDefinitions/AppEditor";
    call_ok(
        &app.admin,
        Method::PUT,
        custom,
        Some(json!({"actions":["ajar.applications/*"]})),
    )
    .await;
    call_ok(
        &app.admin,
        Method::PUT,
        &format!("/api/v1{CRM}/eligibleRoles/alice"),
        Some(json!({"principal":"alice","roleDefinition":"AppEditor"})),
    )
    .await;
    let r = call(&app.admin, Method::DELETE, custom, None).await;
    assert_eq!(
        (r.status, target(&r).as_str()),
        (409, "name"),
        "{:?}",
        r.body
    );
    assert!(error_of(&r).message.contains("eligible role alice"));

    let alice = app.user("alice", Some(("JitRequester", RG))).await;
    let r = call(
        &alice,
        Method::PUT,
        &req_path("edit"),
        Some(json!({"properties":{"applicationResourceId":CRM,
            "jitAuthorizationPolicies":[{"principalId":"alice","roleDefinitionId":"AppEditor"}],
            "jitSchedulingPolicy":{"type":"Once","duration":"PT1H"}}})),
    )
    .await;
    assert_eq!(state_of(&r), RequestState::Active, "{:?}", r.body);
    assert!(
        ask(&app, "alice", "ajar.applications/write", CRM)
            .await
            .allowed
    );
    call_ok(
        &app.admin,
        Method::DELETE,
        &format!("/api/v1{CRM}/eligibleRoles/alice"),
        None,
    )
    .await;
    let r = call(&app.admin, Method::DELETE, custom, None).await;
    assert_eq!(
        r.status, 409,
        "the active elevation still uses it: {:?}",
        r.body
    );
    app.advance(SignedDuration::from_hours(1));
    app.tick().await;
    assert_eq!(
        call(&app.admin, Method::DELETE, custom, None).await.status,
        204
    );
}

#[tokio::test]
async fn declaring_actions_and_roles_needs_write_at_the_application() {
    let app = TestApp::spawn().await;
    application(&app, CRM, manual()).await;
    declare_roles(&app, CRM).await;
    // Administrators of applications elsewhere, readers here, requesters here.
    let elsewhere = app.user("eve", Some(("JitAdmin", RG2))).await;
    let reader = app.user("rita", Some(("SecurityReader", RG))).await;
    let requester = app.user("rex", Some(("JitRequester", RG))).await;
    let writes = [
        (
            Method::PUT,
            format!("/api/v1{CRM}/actions"),
            Some(json!({"namespace":"crm","actions":["crm.x"]})),
        ),
        (
            Method::PUT,
            format!("/api/v1{CRM}/roleDefinitions/Admin"),
            Some(json!({"actions":["*"]})),
        ),
        (
            Method::DELETE,
            format!("/api/v1{CRM}/roleDefinitions/Reader"),
            None,
        ),
    ];
    for who in [&elsewhere, &reader, &requester] {
        for (method, path, body) in &writes {
            let r = call(who, method.clone(), path, body.clone()).await;
            assert_eq!(r.status, 403, "{method} {path}: {:?}", r.body);
        }
    }
    for who in [&elsewhere, &requester] {
        for path in [
            format!("/api/v1{CRM}/actions"),
            format!("/api/v1{CRM}/roleDefinitions"),
            format!("/api/v1{CRM}/roleDefinitions/Reader"),
        ] {
            assert_eq!(
                call(who, Method::GET, &path, None).await.status,
                403,
                "{path}"
            );
        }
    }
    let roles: List<ApplicationRole> =
        get_as(&reader, &format!("/api/v1{CRM}/roleDefinitions")).await;
    assert_eq!(roles.value.len(), 2, "refused writes changed nothing");
    // An administrator of rg2 may declare an application there, but never take a namespace
    // already declared, nor ajar's.
    application(&app, ERP, manual()).await;
    for (ns, status) in [("crm", 409), ("ajar", 400), ("erp", 201)] {
        let r = call(
            &elsewhere,
            Method::PUT,
            &format!("/api/v1{ERP}/actions"),
            Some(json!({"namespace":ns,"actions":[format!("{ns}.orders/read")]})),
        )
        .await;
        assert_eq!(r.status, status, "{ns}: {:?}", r.body);
    }
}
