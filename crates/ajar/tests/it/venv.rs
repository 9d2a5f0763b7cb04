//! Python packages from the Python package index, pinned, for the tests that check ajar with
//! tools others publish (the Azure SDK, an OpenAPI validator).
//!
//! The packages come from a virtual environment an environment variable names (CI makes it
//! once, `.ci/run`), or else from a throwaway one made here and filled from the index. When
//! neither works the test fails, unless `AJAR_SKIP_SDK=1` says to skip it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the caller asked to skip the tests whose Python packages cannot be had.
fn may_skip() -> bool {
    std::env::var("AJAR_SKIP_SDK").is_ok_and(|v| v == "1")
}

/// The Python interpreter of a virtual environment holding `packages`: the one `var` names, or
/// a new one under `dir`. `None` when the packages cannot be had and skipping was asked for;
/// otherwise a failure saying why. `what` names the packages in messages.
pub(crate) fn python(dir: &Path, var: &str, packages: &[&str], what: &str) -> Option<PathBuf> {
    if let Ok(venv) = std::env::var(var) {
        let py = PathBuf::from(venv).join("bin/python");
        assert!(py.exists(), "{var} names no virtual environment: {py:?}");
        return Some(py);
    }
    let venv = dir.join("venv");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output();
    let fail = |why: String| {
        if may_skip() {
            eprintln!("test SKIPPED (AJAR_SKIP_SDK=1): {why}");
            None
        } else {
            panic!(
                "{why}\n(set AJAR_SKIP_SDK=1 to skip this test where {what} cannot be installed)"
            )
        }
    };
    match made {
        Ok(o) if o.status.success() => {}
        other => {
            return fail(format!(
                "python3 -m venv failed (Debian: python3-venv): {other:?}"
            ));
        }
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(packages)
        .output();
    match pip {
        Ok(o) if o.status.success() => Some(venv.join("bin/python")),
        Ok(o) => fail(format!(
            "pip could not install {what}: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => fail(format!("pip did not run: {e}")),
    }
}
