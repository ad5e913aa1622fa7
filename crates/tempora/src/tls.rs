//! TLS for every port (rustls with ring): the server's certificate chain and key, and with a
//! client CA, mutual TLS — a client must present a certificate that CA signed.
//!
//! gRPC uses tonic's TLS acceptor; the HTTP API and UI ports use a listener that completes
//! handshakes off the accept loop (a slow or silent client cannot hold up the others).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// Where the PEM files are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (PEM).
    pub client_ca: Option<PathBuf>,
}

/// A handshake that does not finish in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The loaded certificates, ready for both kinds of port.
pub(crate) struct Tls {
    pub grpc: tonic::transport::ServerTlsConfig,
    pub http: tokio_rustls::TlsAcceptor,
}

fn read(what: &str, path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))
}

impl TlsConfig {
    /// Reads and checks the files (a bad file fails the start, not the first handshake).
    pub(crate) fn load(&self) -> Result<Tls, String> {
        let cert_pem = read("certificate", &self.cert)?;
        let key_pem = read("key", &self.key)?;
        let ca_pem = self.client_ca.as_ref().map(|ca| read("client CA", ca)).transpose()?;

        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("TLS certificate {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!("TLS certificate {}: no PEM certificate in it", self.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| format!("TLS key {}: no usable PEM private key: {e}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = match (&ca_pem, &self.client_ca) {
            (Some(ca_pem), Some(ca_path)) => builder.with_client_cert_verifier(client_verifier(ca_pem, ca_path)?),
            _ => builder.with_no_client_auth(),
        };
        let mut http = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("TLS certificate {} and key {}: {e}", self.cert.display(), self.key.display()))?;
        http.alpn_protocols = vec![b"http/1.1".to_vec()];

        let identity = tonic::transport::Identity::from_pem(&cert_pem, &key_pem);
        let mut grpc = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(ca_pem) = &ca_pem {
            grpc = grpc.client_ca_root(tonic::transport::Certificate::from_pem(ca_pem));
        }
        Ok(Tls { grpc, http: tokio_rustls::TlsAcceptor::from(Arc::new(http)) })
    }
}

impl TlsConfig {
    /// How this server calls the other nodes of its cluster: their certificates checked
    /// against `ca` (default: the client CA, else this node's own certificate chain, which
    /// holds the CA when the nodes' certificates share one), this node's certificate presented
    /// (mutual TLS).
    pub(crate) fn client(&self, ca: Option<&std::path::Path>) -> Result<tonic::transport::ClientTlsConfig, String> {
        let ca = ca.map(PathBuf::from).or_else(|| self.client_ca.clone()).unwrap_or_else(|| self.cert.clone());
        let ca_pem = read("cluster CA", &ca)?;
        if CertificateDer::pem_slice_iter(&ca_pem).next().is_none() {
            return Err(format!("TLS cluster CA {}: no PEM certificate in it", ca.display()));
        }
        let cert_pem = read("certificate", &self.cert)?;
        if let Some(client_ca) = &self.client_ca {
            self.check_client_use(&cert_pem, client_ca)?;
        }
        let identity = tonic::transport::Identity::from_pem(cert_pem, read("key", &self.key)?);
        Ok(tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
            .identity(identity))
    }
}

impl TlsConfig {
    /// With mutual TLS a node presents its own certificate to the others, which check it as
    /// they check any client's: refused at start, with the reason, if they would refuse it
    /// (typically an extended key usage without `clientAuth`).
    fn check_client_use(&self, cert_pem: &[u8], client_ca: &std::path::Path) -> Result<(), String> {
        use crate::clock::Clock;
        let ca_pem = read("client CA", &client_ca.to_path_buf())?;
        let verifier = client_verifier(&ca_pem, client_ca)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("TLS certificate {}: {e}", self.cert.display()))?;
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(format!("TLS certificate {}: no PEM certificate in it", self.cert.display()));
        };
        let now_ms = crate::clock::SystemClock.now_ms().max(0) as u64;
        let now = rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_millis(now_ms));
        verifier.verify_client_cert(end_entity, intermediates, now).map(drop).map_err(|e| {
            format!(
                "a cluster node presents its certificate {} to the other nodes, which require client certificates from {}: it is refused as one ({e}); give it the clientAuth extended key usage too",
                self.cert.display(),
                client_ca.display()
            )
        })
    }
}

/// What checks clients' certificates against the client CA (the server's mutual TLS, and a
/// cluster node's check of its own certificate at start).
fn client_verifier(
    ca_pem: &[u8],
    ca_path: &std::path::Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let bad = |e: &dyn std::fmt::Display| format!("TLS client CA {}: {e}", ca_path.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no PEM certificate in it"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().map_err(|e| bad(&e))
}

/// An HTTP listener whose connections are TLS streams.
pub(crate) struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` and hands over connections whose handshake completed; the accept
    /// task ends when the returned listener is dropped.
    pub(crate) fn new(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = tx.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { accepted, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept task is gone (it only ends when this listener is dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
