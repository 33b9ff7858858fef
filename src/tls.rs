//! TLS served directly (`server.tls`): the certificate and key from PEM files, behind
//! a `ResolvesServerCert` whose key is swapped atomically on reload (SIGHUP), so new
//! handshakes get the new certificate and open sessions are not touched.

use anyhow::Context;
use rustls::crypto::ring::{default_provider, sign::any_supported_type};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The served certificate, reloadable from its files.
#[derive(Debug)]
pub struct Certificates {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

/// Reads a PEM certificate chain and private key (PKCS#8, PKCS#1 or SEC1).
fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("server.tls.cert_path {}", cert_path.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "server.tls.cert_path {}: no certificate in the file",
        cert_path.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("server.tls.key_path {}", key_path.display()))?;
    let signing = any_supported_type(&key).with_context(|| {
        format!(
            "server.tls.key_path {}: unsupported key",
            key_path.display()
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .context("server.tls: the key does not belong to the certificate")?;
    Ok(Arc::new(certified))
}

impl Certificates {
    pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Arc<Certificates>> {
        Ok(Arc::new(Certificates {
            current: RwLock::new(load(cert_path, key_path)?),
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
        }))
    }

    /// Reads the files again; on any error the served certificate stays as it was.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = load(&self.cert_path, &self.key_path)?;
        *self
            .current
            .write()
            .expect("certificate lock is never poisoned") = fresh;
        Ok(())
    }

    /// The rustls server configuration (HTTP/1.1 only, as the HTTP service speaks it).
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self
            .current
            .read()
            .expect("certificate lock is never poisoned");
        Some(Arc::clone(&current))
    }
}

/// Reloads `certs` on every SIGHUP, for as long as the process runs.
pub async fn reload_on_sighup(certs: Arc<Certificates>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the TLS certificate will not reload");
        return;
    };
    while hangups.recv().await.is_some() {
        match certs.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "TLS certificate reload failed; serving the previous one")
            }
        }
    }
}

/// A client configuration trusting the PEM certificates in `ca_file` (the system's
/// bundle by default): webhook deliveries to `https://` receivers.
pub fn client_config(ca_file: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("reading {}", ca_file.display()))?
    {
        // A bundle may hold certificates this verifier cannot use; the rest still count.
        let _ = roots.add(cert.with_context(|| format!("parsing {}", ca_file.display()))?);
    }
    if roots.is_empty() {
        anyhow::bail!("{} holds no usable certificate", ca_file.display());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
