//! The console in a real headless Chromium (Debian's `chromium` driven through `chromedriver`)
//! against a real server: sign in, enable JIT, request access and watch it open, approve an
//! application request as another user, the activity page and its CSV; and the session and
//! CSRF rules over plain HTTP. With `AJAR_SCREENSHOTS=DIR`, each main page is saved there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
#![allow(
    clippy::disallowed_methods,
    reason = "waits for a browser and a child process, no access window is slept through"
)]

use ajar_oidc::{IssuerConfig, Providers};
use ajar_testkit::TestApp;
use ajar_testkit::idp::{CLIENT_ID, TestIdp, User};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const RG: &str = "/subscriptions/s1/resourceGroups/rg1";
const VM: &str = "/subscriptions/s1/resourceGroups/rg1/machines/vm1";
const WIN: &str = "/subscriptions/s1/resourceGroups/rg1/machines/win1";
const APP: &str = "/subscriptions/s1/resourceGroups/rg1/applications/crm";

/// A chromedriver process and a headless Chromium session through it.
struct Browser {
    client: Client,
    driver: Child,
}

impl Browser {
    async fn start() -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver =
            Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (Debian package chromium-driver) must be installed");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                            "--window-size=1280,900", "--disable-gpu"]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return Browser { client, driver },
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no browser session: {last:?}");
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    async fn go(&self, app: &TestApp, path: &str) {
        self.client
            .goto(&format!("{}{path}", app.base))
            .await
            .unwrap();
    }

    /// The page's text ("" while a navigation replaces it).
    async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    async fn fill(&self, css: &str, value: &str) {
        let e = self.client.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Waits until the page's text contains `want`.
    async fn until_text(&self, want: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            last = self.text().await;
            if last.contains(want) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{want:?} never appeared in: {last}");
    }

    /// Waits until an element at `css` exists; answers its text.
    async fn until_element(&self, css: &str) -> String {
        for _ in 0..100 {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
            {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never appeared in: {}", self.text().await);
    }

    /// Waits until the element at `css` contains `want`; answers its text.
    async fn until_element_has(&self, css: &str, want: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                last = e.text().await.unwrap_or_default();
                if last.contains(want) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never contained {want:?} (last {last:?})");
    }

    /// Waits until the element at `css` reads exactly `want`.
    async fn until_element_text(&self, css: &str, want: &str) {
        let mut last = String::new();
        for _ in 0..100 {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                last = e.text().await.unwrap_or_default();
                if last == want {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never read {want:?} (last {last:?})");
    }

    async fn sign_in(&self, app: &TestApp, token: &str) {
        self.go(app, "/").await;
        assert_eq!(
            self.path().await,
            "/signin",
            "signed out, / leads to sign-in"
        );
        self.fill("#token", token).await;
        self.click("form button[type=submit]").await;
        self.until_text("Sign out").await;
    }

    async fn sign_out(&self) {
        self.click(".signout button").await;
        self.until_text("API token").await;
    }

    /// Audits the page with axe-core (the `axe.min.js` at `$AJAR_AXE_JS`) and fails on any
    /// violation; says loudly that it skipped when the variable is unset.
    async fn audit(&self, what: &str) {
        let Some(axe) = axe_source() else {
            eprintln!(
                "SKIPPED: accessibility audit of {what}: AJAR_AXE_JS is not set \
                 (npm install --prefix /opt/axe axe-core, then \
                 AJAR_AXE_JS=/opt/axe/node_modules/axe-core/axe.min.js)"
            );
            return;
        };
        self.client.execute(axe, vec![]).await.unwrap();
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, {resultTypes: ['violations']}).then(r => done(\
                   r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,\
                     nodes: v.nodes.map(n => n.target.join(' '))}))));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(found, json!([]), "axe-core violations on {what}");
    }

    /// Saves a screenshot to `$AJAR_SCREENSHOTS/NAME.png` when that is set.
    async fn shot(&self, name: &str) {
        if let Ok(dir) = std::env::var("AJAR_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
        }
    }
}

/// axe-core's script, read once from `$AJAR_AXE_JS` (never downloaded by the tests).
fn axe_source() -> Option<&'static str> {
    static AXE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    AXE.get_or_init(|| {
        let path = std::env::var("AJAR_AXE_JS").ok()?;
        Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("AJAR_AXE_JS={path}: {e}")))
    })
    .as_deref()
}

async fn put(app: &TestApp, path: &str, body: Value) {
    let _: Value = app
        .admin
        .put(&format!("/api/v1{path}"), &body)
        .await
        .unwrap();
}

async fn user(app: &TestApp, name: &str, role: &str) -> String {
    let c = app.user(name, Some((role, RG))).await;
    c.token().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_user_enables_jit_requests_access_and_finds_it_in_the_log() {
    let app = TestApp::spawn().await;
    put(
        &app,
        VM,
        json!({"properties":{"os":"linux","addresses":["10.1.0.4"]}}),
    )
    .await;
    put(
        &app,
        WIN,
        json!({"properties":{"os":"windows","addresses":["10.1.0.5"]}}),
    )
    .await;
    // An aws agent: the kind that reports standing exposures.
    let created: Value = app
        .admin
        .post(
            "/api/v1/agents",
            &json!({"name":"agent-1","mode":"aws","machines":[VM, WIN]}),
        )
        .await
        .unwrap();
    let agent = app.client(created["token"].as_str());
    let _: Value = agent.get("/api/v1/agent/desiredState").await.unwrap();
    let b = Browser::start().await;
    b.go(&app, "/signin").await;
    b.audit("sign-in").await;
    b.shot("signin").await;
    b.sign_in(&app, &app.admin_token.clone()).await;

    // A list longer than a page continues on the next (here a page of one machine).
    b.go(
        &app,
        "/machines?scope=/subscriptions/s1&tab=notconfigured&top=1",
    )
    .await;
    let page = b.until_text("Next page").await;
    assert!(page.contains("vm1") && !page.contains("win1"), "{page}");
    b.click("a[rel=next]").await;
    let page = b.until_text("First page").await;
    assert!(page.contains("win1") && !page.contains("vm1"), "{page}");
    assert!(!page.contains("Next page"), "{page}");

    // Not configured → select vm1 → Enable JIT with the defaults.
    b.go(&app, "/machines?scope=/subscriptions/s1&tab=notconfigured")
        .await;
    let page = b.until_text("Not configured (2)").await;
    assert!(page.contains("vm1") && page.contains("win1"), "{page}");
    assert!(page.contains("3 h") && !page.contains("PT3H"), "{page}");
    b.audit("machines, not configured").await;
    b.click(&format!("input[name=machine][value='{VM}']")).await;
    b.shot("machines-not-configured").await;
    b.click("#enable button[type=submit]").await;
    let page = b.until_text("Configured (1)").await;
    assert!(
        page.contains("vm1") && page.contains("Request access"),
        "{page}"
    );
    // A confirmation names the machines and the policy.
    let done = b.until_element(".notice.success").await;
    assert!(
        done.contains("JIT is enabled on vm1 under the policy default")
            && done.contains(&format!("{RG}/jitNetworkAccessPolicies/default")),
        "{done}"
    );
    b.audit("machines, configured, after Enable JIT").await;
    b.shot("machines-enabled").await;
    // A port its agent finds open to everyone by another rule is listed under the machines.
    let exposed = |exposures: Value| json!({"version":"1.0","appliedRevision":0,"machines":[{"id":VM,"exposures":exposures}]});
    let r = agent
        .raw(
            reqwest::Method::POST,
            "/api/v1/agent/report",
            Some(&exposed(
                json!([{"number":22,"protocol":"TCP","source":"0.0.0.0/0",
                "allowedBy":"security group sg-0abc (web-open)"}]),
            )),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{:?}", r.body);
    b.go(&app, "/machines?scope=/subscriptions/s1&tab=configured")
        .await;
    let page = b.until_text("Standing exposures").await;
    assert!(
        page.contains("port 22/TCP open to 0.0.0.0/0 by security group sg-0abc (web-open)"),
        "{page}"
    );
    b.audit("machines, configured, with a standing exposure")
        .await;
    let r = agent
        .raw(
            reqwest::Method::POST,
            "/api/v1/agent/report",
            Some(&exposed(json!([]))),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{:?}", r.body);
    b.go(&app, "/machines?scope=/subscriptions/s1&tab=unsupported")
        .await;
    b.until_text("Machines JIT cannot protect").await;
    b.audit("machines, unsupported").await;
    b.go(&app, "/machines?scope=/subscriptions/s1&tab=configured")
        .await;
    b.until_text("Configured (1)").await;

    // Request access: "my IP" is prefilled, the slider is bounded by the policy's maximum.
    b.click("a[href^='/access/new']").await;
    b.until_text("Justification").await;
    let source = b
        .client
        .find(Locator::Id("source"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(source.as_deref(), Some("127.0.0.1"));
    let max = b
        .client
        .find(Locator::Id("minutes"))
        .await
        .unwrap()
        .attr("max")
        .await
        .unwrap();
    assert_eq!(max.as_deref(), Some("180"), "PT3H");
    let page = b.text().await;
    assert!(
        page.contains("up to 3 h") && page.contains("Duration: 1 h") && !page.contains("PT"),
        "{page}"
    );
    b.fill("#reason", "patching <openssl>").await;
    b.audit("request access").await;
    b.shot("request-access").await;
    b.click("form.card button[type=submit]").await;
    let page = b.until_text("opening").await;
    assert!(page.contains("Closes in"), "{page}");
    // The agent reports the port open: the page turns to "open" by itself.
    let reqs: Value = app
        .admin
        .get(&format!(
            "/api/v1{RG}/jitNetworkAccessPolicies/default/requests"
        ))
        .await
        .unwrap();
    let id = reqs["value"][0]["id"].as_str().unwrap().to_owned();
    let _: Value = agent
        .post(
            "/api/v1/agent/report",
            &json!({"version":"t","appliedRevision":1,
            "opened":[{"requestId":id,"seq":0,"at":app.now().to_string()}]}),
        )
        .await
        .unwrap_or(json!({}));
    b.until_element_text("[data-state]", "open").await;
    // Counted down on the server's clock (the test's is months behind the browser's), with
    // the machine's address to connect to.
    let left = b.until_element(".countdown").await;
    assert!(left.starts_with("59m") || left.starts_with("1h"), "{left}");
    assert!(b.text().await.contains("10.1.0.4:22"));
    b.audit("access status").await;
    b.shot("access-status").await;

    // Configured tab: the figures.
    b.go(&app, "/machines?scope=/subscriptions/s1&tab=configured")
        .await;
    let page = b.until_text("Approved (7 days)").await;
    assert!(page.contains("admin"), "last user: {page}");
    b.audit("machines, configured").await;
    b.shot("machines-configured").await;

    // History names the machine the access was for, with its policy beneath.
    b.go(&app, "/history").await;
    let page = b.until_text("policy default").await;
    assert!(page.contains("vm1"), "{page}");
    b.audit("history").await;

    // The activity page shows the initiate; its CSV downloads with the justification intact.
    b.go(&app, "/activity").await;
    let page = b.until_text("ajar.jit/policies/initiate/action").await;
    assert!(page.contains("Download as CSV"), "{page}");
    // The sign-in is one record of its own, not a token write.
    assert!(page.contains("ajar.sessions/signin"), "{page}");
    let writes: Value = app
        .admin
        .get("/api/v1/activity?principal=admin&action=ajar.tokens/write")
        .await
        .unwrap();
    assert_eq!(writes["value"], json!([]), "no token write for a sign-in");
    // At 1280 px: the filters on one line, the table without a sideways scroll, each time on
    // one line, and long resource ids shortened with the whole id in their tooltip.
    let layout = b
        .client
        .execute(
            "const tops = [...document.querySelectorAll('form.filters > *')]\
               .map(e => Math.round(e.getBoundingClientRect().bottom));\
             const box = document.querySelector('.scroll');\
             const times = [...document.querySelectorAll('tbody time')];\
             const line = parseFloat(getComputedStyle(times[0]).lineHeight);\
             return {oneLine: new Set(tops).size === 1,\
                     scrolls: box.scrollWidth > box.clientWidth,\
                     tallTimes: times.filter(t => t.getBoundingClientRect().height > line * 1.5).length,\
                     titled: [...document.querySelectorAll('tbody .id[title]')].map(e => e.title)};",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(layout["oneLine"], true, "{layout}");
    assert_eq!(layout["scrolls"], false, "{layout}");
    assert_eq!(layout["tallTimes"], 0, "{layout}");
    assert!(
        layout["titled"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("{RG}/jitNetworkAccessPolicies/default"))),
        "{layout}"
    );
    b.audit("activity").await;
    b.shot("activity").await;
    // Its pages follow one another.
    b.go(&app, "/activity?top=2").await;
    b.until_text("Next page").await;
    let first_ids = b.until_element("tbody").await;
    b.click("a[rel=next]").await;
    b.until_text("First page").await;
    let next_ids = b.until_element("tbody").await;
    assert_ne!(first_ids, next_ids);
    let csv = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.querySelector('a[download]').href).then(r => r.text()).then(done);",
            vec![],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap();
    assert!(csv.starts_with("id,time,principal,"), "{csv}");
    assert!(csv.contains("patching <openssl>"), "{csv}");

    // Readable on a phone.
    b.client.set_window_size(390, 844).await.unwrap();
    b.go(&app, "/machines?scope=/subscriptions/s1&tab=configured")
        .await;
    b.until_text("Configured").await;
    b.audit("machines on a phone").await;
    b.shot("machines-phone").await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approver_decides_an_application_request_in_the_browser() {
    let app = TestApp::spawn().await;
    put(
        &app,
        APP,
        json!({"properties":{"jitAccessPolicy":{"jitApprovalMode":"ManualApprove",
        "jitApprovers":[{"id":"bob","type":"user"}]}}}),
    )
    .await;
    // The application's actions and its Contributor role, which the eligibility names.
    put(
        &app,
        &format!("{APP}/actions"),
        json!({"namespace":"crm","actions":["crm.orders/read","crm.orders/write"]}),
    )
    .await;
    put(
        &app,
        &format!("{APP}/roleDefinitions/Contributor"),
        json!({"actions":["crm.orders/*"]}),
    )
    .await;
    put(
        &app,
        &format!("{APP}/eligibleRoles/alice"),
        json!({"principal":"alice","roleDefinition":"Contributor"}),
    )
    .await;
    let alice = user(&app, "alice", "JitRequester").await;
    // Reading the application's page needs read access to it.
    put(
        &app,
        "/roleAssignments/alice-read",
        json!({
        "principal":"alice","roleDefinition":"SecurityReader","scope":APP}),
    )
    .await;
    let bob = user(&app, "bob", "Approver").await;
    let b = Browser::start().await;

    // alice activates Contributor from the application's page.
    b.sign_in(&app, &alice).await;
    b.go(&app, &format!("/apps/view?id={APP}")).await;
    let page = b.until_text("Activate a role").await;
    assert!(
        page.contains("cannot change"),
        "the JIT choice is explained: {page}"
    );
    b.fill("#a-duration", "2 h").await;
    b.fill("#a-reason", "incident 42").await;
    b.audit("application").await;
    b.shot("application").await;
    b.click("form[action='/apps/activate'] button").await;
    let page = b.until_text("Pending").await;
    assert!(page.contains("role"), "{page}");
    // An error lands next to its field.
    b.go(&app, &format!("/apps/view?id={APP}")).await;
    b.fill("#a-duration", "PT99H").await;
    b.click("form[action='/apps/activate'] button").await;
    let err = b.until_element("#err-duration").await;
    assert!(err.contains("maximum"), "{err}");
    b.sign_out().await;

    // bob approves with a reason in his inbox.
    b.sign_in(&app, &bob).await;
    b.go(&app, "/inbox").await;
    let page = b.until_text("incident 42").await;
    assert!(page.contains("alice"), "{page}");
    assert!(page.contains("2 h") && !page.contains("PT2H"), "{page}");
    b.audit("approvals").await;
    b.shot("approvals").await;
    b.fill("input[name=reason]", "ticket checked").await;
    b.click("button[value=approve]").await;
    b.until_text("Waiting for your decision: none").await;
    b.go(&app, "/history").await;
    let page = b.until_text("Active").await;
    assert!(page.contains("alice") && page.contains("crm"), "{page}");
    b.audit("history of a role request").await;
    b.shot("history").await;
    b.go(&app, "/apps?scope=/subscriptions/s1").await;
    b.until_text("Applications").await;
    b.audit("applications").await;
    b.stop().await;
}

/// The values of the options of the `select` or `datalist` at `css`.
async fn options(b: &Browser, css: &str) -> Value {
    b.client
        .execute(
            "return [...document.querySelectorAll(arguments[0] + ' option')].map(o => o.value);",
            vec![json!(css)],
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_declares_actions_and_roles_and_each_user_activates_only_their_own() {
    let app = TestApp::spawn().await;
    put(
        &app,
        APP,
        json!({"properties":{"jitAccessPolicy":{"jitApprovalMode":"ManualApprove",
        "jitApprovers":[{"id":"bob","type":"user"}]}}}),
    )
    .await;
    let view = format!("/apps/view?id={APP}");
    let b = Browser::start().await;
    b.sign_in(&app, &app.admin_token.clone()).await;
    b.go(&app, &view).await;
    let page = b.until_text("Declare actions").await;
    assert!(
        page.contains("Declared actions: none.") && page.contains("Roles: none."),
        "{page}"
    );
    // The role input offers no role before there is one, and no longer suggests one.
    assert_eq!(options(&b, "#e-roles").await, json!([]));
    let typed = b
        .client
        .find(Locator::Id("e-role"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(typed.as_deref(), Some(""));

    // Declare the actions, one per line and with a comma.
    b.fill("#x-namespace", "crm").await;
    b.fill(
        "#x-actions",
        "crm.orders/read\ncrm.orders/write, crm.invoices/read",
    )
    .await;
    b.click("form[action='/apps/actions'] button").await;
    let declared = b
        .until_element_has("div[aria-label='Declared actions']", "crm.orders/write")
        .await;
    for a in ["crm.invoices/read", "crm.orders/read", "crm.orders/write"] {
        assert!(declared.contains(&format!("crm {a}")), "{a} in {declared}");
    }
    // A namespace the API refuses: its message next to the field.
    b.fill("#x-namespace", "ajar").await;
    b.click("form[action='/apps/actions'] button").await;
    let err = b.until_element("#err-namespace").await;
    assert!(err.contains("ajar's own actions"), "{err}");
    b.audit("application, refused actions").await;

    // Two roles over them; a pattern matching no declared action is refused at its field.
    b.go(&app, &view).await;
    for (name, patterns, description) in [
        ("Contributor", "crm.orders/*", "Works on orders"),
        ("Reader", "*/read", ""),
    ] {
        b.until_text("Add or replace a role").await;
        b.fill("#r-name", name).await;
        b.fill("#r-patterns", patterns).await;
        if !description.is_empty() {
            b.fill("#r-description", description).await;
        }
        b.click("form[action='/apps/roles'] button").await;
        b.until_element_has("div[aria-label='Roles']", name).await;
    }
    let roles = b.until_element("div[aria-label='Roles']").await;
    assert!(
        roles
            .contains("Contributor crm.orders/* crm.orders/read, crm.orders/write Works on orders"),
        "{roles}"
    );
    assert!(
        roles.contains("Reader */read crm.invoices/read, crm.orders/read -"),
        "{roles}"
    );
    b.fill("#r-name", "Refunds").await;
    b.fill("#r-patterns", "crm.refunds/*").await;
    b.click("form[action='/apps/roles'] button").await;
    let err = b.until_element("#err-patterns").await;
    assert!(err.contains("matches none of the actions"), "{err}");
    assert!(
        b.client.find(Locator::Css("#err-actions")).await.is_err(),
        "the error is shown at the role's patterns only"
    );
    b.audit("application, refused role").await;
    b.fill("#r-name", "bad name").await;
    b.fill("#r-patterns", "crm.orders/*").await;
    b.click("form[action='/apps/roles'] button").await;
    let err = b.until_element("#err-role").await;
    assert!(err.contains("must be 1 to 64 letters"), "{err}");

    // The eligible role input offers the application's roles; a group gets Contributor.
    b.go(&app, &view).await;
    b.until_text("Add an eligible role").await;
    assert_eq!(
        options(&b, "#e-roles").await,
        json!(["Contributor", "Reader"])
    );
    b.fill("#e-principal", "group:devs").await;
    b.fill("#e-role", "Contributor").await;
    b.click("form[action='/apps/eligible'] button").await;
    let eligible = b
        .until_element_has("div[aria-label='Eligible roles']", "group:devs")
        .await;
    assert!(eligible.contains("group:devs Contributor"), "{eligible}");
    b.audit("application with its actions and roles").await;
    b.client
        .execute(
            "document.querySelector(\"div[aria-label='Roles']\").scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    b.shot("application-roles").await;
    b.sign_out().await;

    // alice is in devs; bob is eligible for Reader; carol for nothing. Each may read the page.
    put(&app, "/groups/devs", json!({"members":["alice"]})).await;
    put(
        &app,
        &format!("{APP}/eligibleRoles/bob"),
        json!({"principal":"bob","roleDefinition":"Reader"}),
    )
    .await;
    let mut tokens = Vec::new();
    for who in ["alice", "carol"] {
        tokens.push(user(&app, who, "JitRequester").await);
        put(
            &app,
            &format!("/roleAssignments/{who}-read"),
            json!({"principal":who,"roleDefinition":"SecurityReader","scope":APP}),
        )
        .await;
    }
    b.sign_in(&app, &tokens[0]).await;
    b.go(&app, &view).await;
    b.until_text("Activate a role").await;
    assert_eq!(options(&b, "#a-role").await, json!(["Contributor"]));
    assert!(!b.text().await.contains("You are not eligible"));
    b.audit("application, as a user eligible through a group")
        .await;
    b.sign_out().await;

    b.sign_in(&app, &tokens[1]).await;
    b.go(&app, &view).await;
    let page = b.until_text("Activate a role").await;
    assert!(
        page.contains("You are not eligible for a role here."),
        "{page}"
    );
    assert!(
        b.client.find(Locator::Css("#a-role")).await.is_err(),
        "no role to choose"
    );
    b.audit("application, as a user eligible for nothing").await;
    b.stop().await;
}

/// A minimal cookie-aware HTTP session for the rules that need no browser.
struct Http {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Http {
    fn new(app: &TestApp) -> Http {
        Http {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
            cookies: Vec::new(),
        }
    }

    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, resp: &reqwest::Response) -> Vec<String> {
        let set: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set {
            let (kv, _) = c.split_once(';').unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        set
    }

    async fn get(&mut self, path: &str) -> reqwest::Response {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        self.keep(&r);
        r
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of `name="csrf"` in a page.
fn csrf_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[at..at + 32].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_cookies_csrf_and_headers_hold() {
    let app = TestApp::spawn().await;
    put(
        &app,
        VM,
        json!({"properties":{"os":"linux","addresses":["10.1.0.4"]}}),
    )
    .await;
    let mut h = Http::new(&app);
    // Signed out: pages lead to sign-in; the sign-in page has a CSP and a flagged cookie.
    let r = h.get("/machines").await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (303, "/signin")
    );
    let r = h.get("/signin").await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    let page = r.text().await.unwrap();
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "no inline script or style"
    );
    let login_csrf = csrf_in(&page);
    // Sign-in without the form's token, or with a bad API token, is refused.
    let r = h.post("/signin", &[("token", &app.admin_token)], &[]).await;
    assert_eq!(r.status().as_u16(), 403);
    let page = h.get("/signin").await.text().await.unwrap();
    let login_csrf2 = csrf_in(&page);
    assert_ne!(login_csrf, login_csrf2, "a fresh form token each time");
    let r = h
        .post(
            "/signin",
            &[("csrf", &login_csrf2), ("token", "ajar_wrong")],
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 401);
    let page = r.text().await.unwrap();
    let csrf3 = csrf_in(&page);
    // Signed in over a TLS proxy: the session cookie is HttpOnly, SameSite=Strict and Secure.
    let r = h
        .post(
            "/signin",
            &[("csrf", &csrf3), ("token", &app.admin_token)],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = set.iter().find(|c| c.starts_with("ajar_session=")).unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(session.contains(flag), "{flag} in {session}");
    }
    assert!(
        !session.contains(&app.admin_token),
        "the cookie holds a session token, not the one typed"
    );
    let page = h
        .get("/machines?scope=/subscriptions/s1&tab=notconfigured")
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_in(&page);
    // A post without or with a wrong CSRF token changes nothing.
    for bad in ["", "00000000000000000000000000000000"] {
        let r = h
            .post(
                "/machines/enable",
                &[
                    ("csrf", bad),
                    ("machine", VM),
                    ("scope", "/subscriptions/s1"),
                ],
                &[],
            )
            .await;
        assert_eq!(r.status().as_u16(), 403, "csrf {bad:?}");
    }
    let m: Value = app.admin.get(&format!("/api/v1{VM}")).await.unwrap();
    assert!(m["properties"]["jitPolicyId"].is_null(), "nothing enabled");
    let r = h
        .post(
            "/machines/enable",
            &[
                ("csrf", &csrf),
                ("machine", VM),
                ("scope", "/subscriptions/s1"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let m: Value = app.admin.get(&format!("/api/v1{VM}")).await.unwrap();
    assert!(
        m["properties"]["jitPolicyId"].is_string(),
        "enabled with the right token"
    );
    // The port editor: chosen and custom ports, protocol, sources and maximum.
    put(
        &app,
        WIN,
        json!({"properties":{"os":"windows","addresses":["10.1.0.5"]}}),
    )
    .await;
    let r = h
        .post(
            "/machines/enable",
            &[
                ("csrf", &csrf),
                ("machine", WIN),
                ("scope", "/subscriptions/s1"),
                ("port", "3389"),
                ("port", "2222"),
                ("protocol", "TCP"),
                ("sources", "10.0.0.0/24, 10.1.0.0/24"),
                ("max", "PT1H"),
                ("policy", "windows"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let p: Value = app
        .admin
        .get(&format!("/api/v1{RG}/jitNetworkAccessPolicies/windows"))
        .await
        .unwrap();
    let ports = &p["properties"]["virtualMachines"][0]["ports"];
    assert_eq!(
        (ports[0]["number"].as_u64(), ports[1]["number"].as_u64()),
        (Some(3389), Some(2222))
    );
    assert_eq!(ports[1]["protocol"], "TCP");
    assert_eq!(ports[1]["maxRequestAccessDuration"], "PT1H");
    assert_eq!(
        ports[1]["allowedSourceAddressPrefixes"],
        json!(["10.0.0.0/24", "10.1.0.0/24"])
    );
    // A bad port is refused on the page, changing nothing.
    let r = h
        .post(
            "/machines/enable",
            &[
                ("csrf", &csrf),
                ("machine", WIN),
                ("scope", "/subscriptions/s1"),
                ("port", "99999"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("99999 is not a port number")
    );
    // Sign out revokes the session token itself: the old cookie no longer works anywhere.
    let old = h.cookies.clone();
    let r = h.post("/signout", &[("csrf", &csrf)], &[]).await;
    assert_eq!(r.status().as_u16(), 303);
    h.cookies = old;
    let r = h.get("/machines").await;
    assert_eq!(r.status().as_u16(), 303, "the stolen cookie is dead");
    let secret = h
        .cookies
        .iter()
        .find(|(k, _)| k == "ajar_session")
        .map(|(_, v)| v.split_once(':').unwrap().1.to_owned());
    if let Some(secret) = secret {
        let api = app.client(Some(&secret));
        assert_eq!(
            api.raw(reqwest::Method::GET, "/api/v1/me", None)
                .await
                .unwrap()
                .status,
            401
        );
    }
    // A signed-in user without rights gets the API's refusal as a page, and it is recorded.
    let nobody = app.user("nobody", None).await;
    let mut n = Http::new(&app);
    let page = n.get("/signin").await.text().await.unwrap();
    let signed_in = n
        .post(
            "/signin",
            &[
                ("csrf", &csrf_in(&page)),
                ("token", nobody.token().unwrap()),
            ],
            &[],
        )
        .await;
    assert_eq!(signed_in.status().as_u16(), 303);
    let r = n.get("/activity").await;
    assert_eq!(r.status().as_u16(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("may not perform ajar.activity/read")
    );
    let log: Value = app
        .admin
        .get("/api/v1/activity?result=Denied&principal=nobody")
        .await
        .unwrap();
    assert_eq!(log["value"][0]["action"], "ajar.authorization/denied");
}

/// A server trusting a fresh test identity provider named "Test SSO".
async fn with_identity_provider() -> (TestApp, TestIdp) {
    let idp = TestIdp::start(ajar_testkit::START.parse().unwrap()).await;
    let config = IssuerConfig {
        name: Some("Test SSO".into()),
        ..IssuerConfig::new(idp.issuer.clone(), CLIENT_ID)
    };
    let app =
        TestApp::spawn_with(move |s| s.with_oidc(Providers::new(vec![config]).unwrap())).await;
    (app, idp)
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_through_the_identity_provider_lands_in_the_console_with_its_groups() {
    let (app, idp) = with_identity_provider().await;
    put(
        &app,
        VM,
        json!({"properties":{"os":"linux","addresses":["10.1.0.4"]}}),
    )
    .await;
    // alice (groups ops and dba at the provider) may read rg1 only through group:ops.
    let _: Value = app
        .admin
        .put(
            "/api/v1/roleAssignments/ops-read",
            &json!({"principal":"group:ops","roleDefinition":"SecurityReader","scope":RG}),
        )
        .await
        .unwrap();
    let b = Browser::start().await;
    b.go(&app, "/").await;
    assert_eq!(b.path().await, "/signin");
    b.until_text("Sign in with Test SSO").await;
    b.audit("sign-in with an identity provider").await;
    b.shot("signin-oidc").await;
    b.click("#signin-oidc-0").await;
    let page = b.until_text("Sign out").await;
    assert_eq!(b.path().await, "/machines");
    assert!(page.contains("alice"), "{page}");
    // The machine (no agent yet, so listed as unsupported) is visible through the group.
    b.until_text("Unsupported (1)").await;
    let sessions: Value = app
        .admin
        .get("/api/v1/tokens?principal=alice")
        .await
        .unwrap();
    let session = &sessions["value"][0];
    assert_eq!(session["description"], "console session");
    assert_eq!(session["groups"], json!(["dba", "ops"]));
    assert!(session["expiresAt"].is_string());
    b.sign_out().await;
    let left: Value = app
        .admin
        .get("/api/v1/tokens?principal=alice")
        .await
        .unwrap();
    assert_eq!(left["value"], json!([]), "signing out ends the session");

    // The provider now signs in bob, who is in no group: he gets in but sees nothing.
    idp.set_user(User {
        sub: "bob".into(),
        email: "bob@example.com".into(),
        groups: vec![],
    });
    b.click("#signin-oidc-0").await;
    let page = b.until_text("Sign out").await;
    assert!(page.contains("bob"), "{page}");
    assert!(!page.contains("Unsupported (1)"), "{page}");
    b.stop().await;
}

/// Follows the console's redirect `to` the identity provider, which signs in at once; answers
/// the path (and query) of the console callback the provider sends the browser back to.
async fn provider_answer(app: &TestApp, to: &str) -> String {
    let answer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(to)
        .send()
        .await
        .unwrap();
    let back = answer.headers()["location"].to_str().unwrap();
    back.strip_prefix(&app.base).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_identity_provider_sign_in_checks_state_and_its_cookie() {
    let (app, idp) = with_identity_provider().await;
    let mut h = Http::new(&app);
    let r = h.get("/signin").await;
    let page = r.text().await.unwrap();
    assert!(page.contains("Sign in with Test SSO"), "{page}");
    let r = h.get("/signin/oidc?provider=7").await;
    assert_eq!(r.status().as_u16(), 400);
    let r = h.get("/signin/oidc?provider=0").await;
    assert_eq!(r.status().as_u16(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to.starts_with(&format!("{}/authorize?", idp.issuer)),
        "{to}"
    );
    for param in [
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "client_id=ajar",
    ] {
        assert!(to.contains(param), "{param} in {to}");
    }
    let flow = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("ajar_oidc_flow="))
        .unwrap();
    assert!(
        flow.contains("SameSite=Lax") && flow.contains("HttpOnly"),
        "{flow}"
    );

    // Let the provider answer, then tamper with the state: no session.
    let callback = provider_answer(&app, &to).await;
    let forged = callback.replace("state=", "state=x");
    let r = h.get(&forged).await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(!h.header().contains("ajar_session"), "{}", h.header());
    // The flow cookie was cleared by the failure, so even the true answer is now refused.
    let r = h.get(&callback).await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(!h.header().contains("ajar_session"));

    // A fresh flow answered truly signs in (the browser's part, without a browser).
    let r = h.get("/signin/oidc?provider=0").await;
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    let back = provider_answer(&app, &to).await;
    let r = h.get(&back).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["refresh"], "0; url=/machines");
    assert!(h.header().contains("ajar_session="));
    let page = h.get("/machines").await.text().await.unwrap();
    assert!(page.contains("alice"), "{page}");
    // The code cannot be used twice.
    let mut other = Http::new(&app);
    let _ = other.get("/signin").await;
    let r = other.get(&back).await;
    assert_eq!(r.status().as_u16(), 400, "no flow cookie in this browser");
}
