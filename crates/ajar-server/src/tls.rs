//! Serving over TLS (rustls): a certificate and key read from PEM files and read again on
//! [`Tls::reload`] (SIGHUP, or when the files change), so a renewed certificate takes effect
//! without a restart; a listener that completes handshakes off the accept loop; and HSTS on
//! every answer.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The `Strict-Transport-Security` value sent over TLS (one year).
pub const HSTS: &str = "max-age=31536000";
/// How often the certificate files are checked for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(30);

/// The certificate files, and the key pair last read from them.
#[derive(Debug)]
pub struct Tls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    modified: Option<(SystemTime, SystemTime)>,
}

/// The modification times of the certificate and key files, when both can be read.
fn stamps(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    modified(cert).zip(modified(key))
}

/// Reads a PEM certificate chain and private key into a key rustls can serve.
fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "{} is not a PEM certificate chain: {e}",
                cert_path.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("{} holds no PEM private key: {e}", key_path.display()))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| format!("{}: unsupported private key: {e}", key_path.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "the key in {} does not match the certificate: {e}",
            key_path.display()
        )
    })?;
    Ok(Arc::new(certified))
}

impl Tls {
    /// Reads the certificate chain and key; fails with a message naming the file at fault.
    pub fn new(
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Result<Self, String> {
        let (cert_path, key_path) = (cert_path.into(), key_path.into());
        let key = load(&cert_path, &key_path)?;
        let stamp = stamps(&cert_path, &key_path);
        Ok(Self {
            current: RwLock::new(Loaded {
                key,
                modified: stamp,
            }),
            cert_path,
            key_path,
        })
    }

    /// Reads the files again. On failure the certificate in use stays, and the error says why.
    pub fn reload(&self) -> Result<(), String> {
        let key = load(&self.cert_path, &self.key_path)?;
        let stamp = stamps(&self.cert_path, &self.key_path);
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        *current = Loaded {
            key,
            modified: stamp,
        };
        tracing::info!(cert = %self.cert_path.display(), "TLS certificate loaded");
        Ok(())
    }

    /// Reloads when either file's modification time changed since the last read.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let stamp = stamps(&self.cert_path, &self.key_path);
        let seen = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .modified;
        if stamp.is_none() || stamp == seen {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// The rustls configuration serving the current key (HTTP/1.1 only, as ajar serves).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Tls {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .key
                .clone(),
        )
    }
}

/// A listener that hands out connections whose TLS handshake is done. Handshakes run in their
/// own tasks (each bounded by [`HANDSHAKE_TIMEOUT`]), so a slow or silent client holds up no
/// one else.
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener`, completing handshakes with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, incoming) = mpsc::channel(128);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = tx.closed() => return,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { incoming, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(conn) => conn,
            // The accept task only stops when this listener is gone; wait forever meanwhile.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Reloads `tls` whenever its files change, until `stopping` turns true.
pub async fn watch(tls: Arc<Tls>, mut stopping: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = stopping.changed() => return,
        }
        if let Err(e) = tls.reload_if_changed() {
            tracing::warn!(error = %e, "the changed TLS certificate cannot be used; keeping the old one");
        }
    }
}

/// Marks requests that arrived over TLS (so the console sets `Secure` cookies) and adds HSTS
/// to every answer.
pub async fn over_tls(mut req: Request, next: Next) -> Response {
    req.headers_mut()
        .insert("x-forwarded-proto", HeaderValue::from_static("https"));
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    resp
}
