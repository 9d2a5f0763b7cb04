//! The AWS client follows no redirect: one would carry the session token to another host.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use ajar_aws::creds::{Chain, Environment};
use ajar_aws::ec2::Ec2;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn a_redirecting_endpoint_gets_no_second_request_elsewhere() {
    // Where a redirect would send the call, with the session token: it must hear nothing.
    let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_at = elsewhere.local_addr().unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    let count = reached.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = elsewhere.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    // The endpoint answers every call with a redirect there.
    let endpoint = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint_at = endpoint.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = endpoint.accept().await {
            let mut buf = vec![0; 65536];
            let _ = s.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{elsewhere_at}/\r\ncontent-length: 0\r\n\r\n"
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    let http = ajar_aws::http_client().unwrap();
    let env = Environment::from_vars(
        [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "session-token"),
        ],
        None,
    );
    let ec2 = Ec2::new(
        http.clone(),
        "eu-west-1".into(),
        Some(format!("http://{endpoint_at}")),
        Chain::resolve(&env, http),
    )
    .unwrap();
    let e = ec2.groups_where(&[]).await.unwrap_err();
    assert_eq!(e.code(), Some("HTTP307"), "{e}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
}
