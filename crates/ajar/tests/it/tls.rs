//! HTTPS: `ajar serve --tls-cert --tls-key` with a certificate from a private CA made by
//! `openssl` for the test, HSTS on answers, a new certificate picked up on SIGHUP, an agent
//! that trusts only the CA it is given (and refuses a server it cannot verify), and the CLI
//! through `AJAR_CA_CERT`.

use super::{ajar, listening_url_and_stderr};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// Runs `openssl ARGS` in `dir`, failing the test on an error.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl) must be installed");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA (`ca.pem`), and a server certificate for 127.0.0.1 signed by it into `NAME.pem` and
/// `NAME.key`, with `cn` as its common name.
pub(crate) fn certificate(dir: &Path, name: &str, cn: &str) {
    if !dir.join("ca.pem").exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ajar test CA",
            ],
        );
    }
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

/// The DER bytes of the first certificate in a PEM file.
fn der(pem_file: &Path) -> Vec<u8> {
    use base64::Engine;
    let text = std::fs::read_to_string(pem_file).unwrap();
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

pub(crate) fn trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .tls_info(true)
        .build()
        .unwrap()
}

/// The certificate the server presented for a fresh connection.
async fn served_certificate(url: &str, ca: &Path) -> Vec<u8> {
    let resp = trusting(ca)
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap();
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate().map(<[u8]>::to_vec))
        .unwrap()
}

pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn serve_tls(dir: &Path) -> (Killed, String, String) {
    let mut child = ajar()
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0", "--log", "warn", "--tls-cert"])
        .arg(dir.join("server.pem"))
        .arg("--tls-key")
        .arg(dir.join("server.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let token = first.trim().rsplit(' ').next().unwrap().to_owned();
    let (url, _stderr) = listening_url_and_stderr(&mut child);
    (Killed(child), url, token)
}

pub(crate) fn fake_nft(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("nft");
    std::fs::write(&path, "#!/bin/sh\ncat >/dev/null\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
#[allow(
    clippy::disallowed_methods,
    reason = "waits for real processes to connect"
)]
async fn https_with_a_private_ca_hsts_reload_and_an_agent_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificate(d, "server", "ajar test 1");
    let (mut server, url, token) = serve_tls(d);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = d.join("ca.pem");

    // Verified against the CA, with HSTS; unverifiable without it; no plain HTTP.
    let resp = trusting(&ca)
        .get(format!("{url}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let untrusted = reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .send()
        .await;
    assert!(
        untrusted.is_err(),
        "a certificate from an unknown CA must not verify"
    );
    let plain = url.replacen("https://", "http://", 1);
    let cleartext = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(cleartext.map(|r| !r.status().is_success()).unwrap_or(true));
    assert_eq!(
        served_certificate(&url, &ca).await,
        der(&d.join("server.pem"))
    );

    // A renewed certificate is served after SIGHUP, without a restart.
    certificate(d, "renewed", "ajar test 2");
    std::fs::copy(d.join("renewed.pem"), d.join("server.pem")).unwrap();
    std::fs::copy(d.join("renewed.key"), d.join("server.key")).unwrap();
    let pid = server.0.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let want = der(&d.join("renewed.pem"));
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = served_certificate(&url, &ca).await;
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, want, "the renewed certificate is served");
    assert!(server.0.try_wait().unwrap().is_none(), "still running");

    // An agent given the CA connects; one relying on the system's roots does not.
    let admin = ajar_api::Client::with_http(url.clone(), Some(token.clone()), trusting(&ca));
    let register = |name: &'static str| {
        let admin = admin.clone();
        async move {
            let v: Value = admin
                .post(
                    "/api/v1/agents",
                    &serde_json::json!({"name": name, "mode": "host", "machines": []}),
                )
                .await
                .unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["token"].as_str().unwrap().to_owned(),
            )
        }
    };
    let nft = fake_nft(d);
    let spawn_agent = |agent_token: &str, ca: Option<&Path>| {
        let mut cmd = ajar();
        cmd.args([
            "agent",
            "--server",
            &url,
            "--token",
            agent_token,
            "--log",
            "info",
            "--nft",
        ])
        .arg(&nft)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some(ca) = ca {
            cmd.arg("--ca-cert").arg(ca);
        }
        Killed(cmd.spawn().unwrap())
    };
    let last_seen = |id: String| {
        let admin = admin.clone();
        async move {
            let v: Value = admin.get(&format!("/api/v1/agents/{id}")).await.unwrap();
            v["lastSeen"].as_str().map(str::to_owned)
        }
    };
    let (good_id, good_token) = register("verifies").await;
    let (bad_id, bad_token) = register("trusts-nothing").await;
    let _good = spawn_agent(&good_token, Some(&ca));
    let mut bad = spawn_agent(&bad_token, None);
    let mut seen = None;
    for _ in 0..100 {
        seen = last_seen(good_id.clone()).await;
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.is_some(), "the agent with the CA reached the server");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(bad.0.stderr.take().unwrap()));
    let refused = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .find(|l| l.contains("agent cycle failed"));
    assert!(
        refused.is_some(),
        "the agent without the CA logs its failure"
    );
    assert_eq!(
        last_seen(bad_id).await,
        None,
        "and never reached the server"
    );

    // The CLI trusts the CA named by AJAR_CA_CERT.
    let out = ajar()
        .args(["whoami", "-o", "json"])
        .env("AJAR_URL", &url)
        .env("AJAR_TOKEN", &token)
        .env("AJAR_CA_CERT", &ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = ajar()
        .args(["whoami"])
        .env("AJAR_URL", &url)
        .env("AJAR_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "no CA, no trust: {out:?}");
}

#[test]
#[allow(clippy::disallowed_methods, reason = "sets file times relative to now")]
fn the_certificate_is_read_again_only_when_its_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificate(d, "server", "one");
    let tls = ajar_server::tls::Tls::new(d.join("server.pem"), d.join("server.key")).unwrap();
    assert_eq!(tls.reload_if_changed(), Ok(false));
    certificate(d, "other", "two");
    // A key that does not match the certificate is refused and the old pair stays.
    std::fs::copy(d.join("other.key"), d.join("server.key")).unwrap();
    let e = tls.reload_if_changed().unwrap_err();
    assert!(e.contains("does not match"), "{e}");
    std::fs::copy(d.join("other.pem"), d.join("server.pem")).unwrap();
    // Modification times have a coarse grain on some file systems: make sure it moved.
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    for f in ["server.pem", "server.key"] {
        std::fs::File::options()
            .write(true)
            .open(d.join(f))
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    assert_eq!(tls.reload_if_changed(), Ok(true));
    assert_eq!(tls.reload_if_changed(), Ok(false));
    assert!(
        ajar_server::tls::Tls::new(d.join("missing.pem"), d.join("server.key"))
            .unwrap_err()
            .contains("missing.pem")
    );
}
