//! ajar's OpenAPI document, as `ajar serve` answers it at `/api/v1/openapi.json`, checked
//! against the OpenAPI 3.1 specification by a published validator (`openapi-spec-validator`),
//! so client generators can rely on it. The document describes both surfaces: the `/api/v1`
//! paths and the Azure-compatible paths at the root.
//!
//! The validator comes from the virtual environment named by `AJAR_OPENAPI_VALIDATOR_VENV` (CI
//! makes it once, `.ci/run`), or else from a throwaway one filled from the Python package index
//! (see [`super::venv`]).

use super::serve;
use serde_json::Value;
use std::process::Command;

/// The validator, pinned so the test does not drift.
pub const PACKAGES: &[&str] = &["openapi-spec-validator==0.9.0"];

#[tokio::test(flavor = "multi_thread")]
async fn the_served_openapi_document_is_valid_openapi_3_1_and_covers_both_surfaces() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(python) = super::venv::python(
        d,
        "AJAR_OPENAPI_VALIDATOR_VENV",
        PACKAGES,
        "the OpenAPI validator",
    ) else {
        return;
    };
    let mut served = serve(&d.join("data"));
    let client = ajar_api::Client::new(served.url.clone(), None);
    let doc: Value = client.get("/api/v1/openapi.json").await.unwrap();
    let _ = served.child.kill();
    let _ = served.child.wait();

    let file = d.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = Command::new(&python)
        .args([
            "-m",
            "openapi_spec_validator",
            "--schema",
            "3.1",
            "--validation-errors",
            "all",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the OpenAPI document is not valid OpenAPI 3.1:\n{}",
        text.chars().take(20_000).collect::<String>()
    );

    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    // Both surfaces, the Azure-compatible one tagged and with `api-version` required.
    assert!(paths.contains_key(
        "/api/v1/subscriptions/{sub}/resourceGroups/{rg}/jitNetworkAccessPolicies/{name}"
    ));
    for (path, methods) in [
        (
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}",
            &["get", "put", "delete"][..],
        ),
        (
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}/initiate",
            &["post"],
        ),
        (
            "/subscriptions/{sub}/providers/Microsoft.Security/jitNetworkAccessPolicies",
            &["get"],
        ),
        (
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Solutions/jitRequests/{name}",
            &["get", "put", "patch", "delete"],
        ),
        (
            "/subscriptions/{sub}/providers/Microsoft.Solutions/jitRequests",
            &["get"],
        ),
    ] {
        for m in methods {
            let op = &paths.get(path).unwrap_or_else(|| panic!("missing {path}"))[m];
            assert_eq!(op["tags"][0], "azure-compatible", "{m} {path}");
            let version = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "api-version")
                .unwrap_or_else(|| panic!("{m} {path}: no api-version"));
            assert_eq!(version["in"], "query");
            assert_eq!(version["required"], true);
        }
    }
    // Operation ids are unique, so generated clients have one method per operation.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "duplicate operation ids");
}
