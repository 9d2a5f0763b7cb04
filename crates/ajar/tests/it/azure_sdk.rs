//! The Azure SDK for Python against `ajar serve --tls-cert`: `tests/azure_sdk/drive.py` drives
//! every operation of `jit_network_access_policies` (azure-mgmt-security) and `jit_requests`
//! (azure-mgmt-managedapplications) with `base_url` set to ajar's root.
//!
//! The SDK comes from the virtual environment named by `AJAR_AZURE_SDK_VENV` (CI makes it once,
//! `.ci/run`), or else from a throwaway one this test makes and fills from the Python package
//! index. When neither works the test fails, unless `AJAR_SKIP_SDK=1` says to skip it.

use super::ajar;
use super::tls::{Killed, certificate, fake_nft, serve_tls, trusting};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The packages, pinned so the test does not drift.
pub const PACKAGES: &[&str] = &[
    "azure-mgmt-security==7.0.0",
    "azure-mgmt-managedapplications==1.0.0b2",
    "azure-core==1.41.0",
    "azure-mgmt-core==1.6.0",
];

const SUB: &str = "s1";
const RG: &str = "/subscriptions/s1/resourceGroups/rg1";

#[tokio::test(flavor = "multi_thread")]
#[allow(
    clippy::disallowed_methods,
    reason = "waits for a real agent process to connect"
)]
async fn the_azure_sdk_drives_every_jit_operation_against_ajar() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(python) = super::venv::python(d, "AJAR_AZURE_SDK_VENV", PACKAGES, "the Azure SDK")
    else {
        return;
    };
    certificate(d, "server", "ajar sdk");
    let (_server, url, token) = serve_tls(d);
    let ca = d.join("ca.pem");
    let admin = ajar_api::Client::with_http(url.clone(), Some(token.clone()), trusting(&ca));

    // What the SDK cannot make: a machine, an application with its roles that the caller is
    // eligible on, and a live agent guarding the machine.
    let vm = format!("{RG}/machines/vm1");
    let _: Value = admin
        .put(
            &format!("/api/v1{vm}"),
            &json!({"properties":{"os":"linux","addresses":["10.0.0.4"]}}),
        )
        .await
        .unwrap();
    let me: Value = admin.get("/api/v1/me").await.unwrap();
    let me = me["principal"].as_str().unwrap().to_owned();
    let _: Value = admin
        .put(
            &format!("/api/v1{RG}/applications/crm"),
            &json!({"properties":{}}),
        )
        .await
        .unwrap();
    // The application's own actions and the Contributor role over them.
    let _: Value = admin
        .put(
            &format!("/api/v1{RG}/applications/crm/actions"),
            &json!({"namespace": "crm", "actions": ["crm.orders/read", "crm.orders/write"]}),
        )
        .await
        .unwrap();
    let _: Value = admin
        .put(
            &format!("/api/v1{RG}/applications/crm/roleDefinitions/Contributor"),
            &json!({"actions": ["crm.orders/*"]}),
        )
        .await
        .unwrap();
    let _: Value = admin
        .put(
            &format!("/api/v1{RG}/applications/crm/eligibleRoles/me"),
            &json!({"principal": me, "roleDefinition": "Contributor"}),
        )
        .await
        .unwrap();
    let agent: Value = admin
        .post(
            "/api/v1/agents",
            &json!({"name": "agent-1", "mode": "host", "machines": [vm]}),
        )
        .await
        .unwrap();
    let nft = fake_nft(d);
    let _agent = Killed(
        ajar()
            .args(["agent", "--server", &url, "--token"])
            .arg(agent["token"].as_str().unwrap())
            .args(["--log", "warn", "--nft"])
            .arg(&nft)
            .arg("--ca-cert")
            .arg(&ca)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let agent_path = format!("/api/v1/agents/{}", agent["id"].as_str().unwrap());
    let mut seen = false;
    for _ in 0..200 {
        let a: Value = admin.get(&agent_path).await.unwrap();
        if a["lastSeen"].is_string() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the agent reached the server");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/azure_sdk/drive.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("AJAR_URL", &url)
            .env("AJAR_CA", &ca)
            .env("AJAR_TOKEN", &token)
            .env("AJAR_ME", &me)
            .env("AJAR_ROLE", "Contributor")
            .env("AJAR_SUB", SUB)
            .env("AJAR_RG", "rg1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "drive.py failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("every operation passed"), "{stdout}");
}
