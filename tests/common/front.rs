//! Real proxies in front of a sluice server: `Nginx` (HTTP reverse proxy, WebSockets
//! included) and `Haproxy` (TCP mode, `send-proxy-v2`), each started on a free port
//! with a generated config in its own temp dir, and stopped (SIGKILL) on drop.
//! scripts/test.sh installs both; a test that needs one fails loudly without it.

use super::process::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The address the proxies connect to sluice from: the one sluice is told to trust.
/// Test clients use other loopback addresses (127.0.0.1 for direct calls, 127.1.x.y
/// for the crowd behind the proxy).
pub const PROXY_SOURCE: &str = "127.0.0.2";

/// `name` on PATH or in the sbin directories (Debian puts daemons there), or
/// `$SLUICE_TEST_<NAME>`.
fn binary(name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(format!("SLUICE_TEST_{}", name.to_uppercase())) {
        return PathBuf::from(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("{name} is not installed: scripts/test.sh installs it (apt-get install {name})")
    })
}

/// A proxy process, killed on drop, with its temp dir (config, logs).
pub struct ProxyProcess {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    name: &'static str,
}

impl ProxyProcess {
    fn spawn(name: &'static str, port: u16, dir: tempfile::TempDir, args: &[&str]) -> ProxyProcess {
        let child = Command::new(binary(name))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).expect("log file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        ProxyProcess {
            port,
            dir,
            child,
            name,
        }
    }

    /// Waits until the proxy forwards `GET /healthz` to sluice (it listens, and its
    /// upstream answers).
    async fn ready(mut self) -> ProxyProcess {
        let client = awc::Client::new();
        for _ in 0..400 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}): {}", self.name, self.log());
            }
            let url = format!("http://127.0.0.1:{}/healthz", self.port);
            if let Ok(r) = client.get(url).send().await {
                if r.status().is_success() {
                    return self;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} did not forward to sluice: {}", self.name, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx as the deployment guide configures it (docs/deploy.md): HTTP/1.1 upstream,
/// WebSocket upgrade headers, `X-Forwarded-For` appended, connecting to sluice from
/// `PROXY_SOURCE`.
pub async fn nginx(upstream_port: u16) -> ProxyProcess {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 8192;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream sluice {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://sluice;
            proxy_bind {PROXY_SOURCE};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
"#
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let prefix = format!("{d}/");
    let conf_arg = path.display().to_string();
    ProxyProcess::spawn("nginx", port, dir, &["-p", &prefix, "-c", &conf_arg])
        .ready()
        .await
}

/// nginx in front of an "origin" site (static files under `/shop/`, as docs/gate.md
/// configures it) guarded by sluice's gate `gate`: `auth_request` to its verify
/// endpoint, a missing or refused pass sent to the waiting page; sluice's own paths
/// (API, waiting page, assets, WebSocket, JWKS) proxied to it.
pub async fn nginx_gate(upstream_port: u16, gate: &str) -> ProxyProcess {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("origin/shop")).expect("origin dir");
    std::fs::write(
        dir.path().join("origin/shop/index.html"),
        "<!doctype html><html lang=\"en\"><head><title>The shop</title></head><body><h1>Welcome to the shop</h1></body></html>\n",
    )
    .expect("origin page");
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream sluice {{
        server 127.0.0.1:{upstream_port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        root {d}/origin;
        location /shop/ {{
            auth_request /_sluice/verify;
            error_page 401 = @waiting;
        }}
        location = /_sluice/verify {{
            internal;
            proxy_pass http://sluice/api/gate/{gate}/verify;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location @waiting {{
            return 302 /a/{gate};
        }}
        location ~ ^/(api|a|ws|assets|healthz|\.well-known)(/|$) {{
            proxy_pass http://sluice;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"#
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let prefix = format!("{d}/");
    let conf_arg = path.display().to_string();
    ProxyProcess::spawn("nginx", port, dir, &["-p", &prefix, "-c", &conf_arg])
        .ready()
        .await
}

/// HAProxy in TCP mode sending a PROXY v2 header to sluice from `PROXY_SOURCE`.
pub async fn haproxy(upstream_port: u16) -> ProxyProcess {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let conf = format!(
        r#"global
    maxconn 8192
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend front
    bind 127.0.0.1:{port}
    default_backend sluice
backend sluice
    server s1 127.0.0.1:{upstream_port} send-proxy-v2 source {PROXY_SOURCE}
"#
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, conf).expect("write haproxy.cfg");
    let conf_arg = path.display().to_string();
    ProxyProcess::spawn("haproxy", port, dir, &["-db", "-f", &conf_arg])
        .ready()
        .await
}

/// The crowd's `n`th client address: 127.1.x.y, distinct for n < 62,500.
pub fn crowd_ip(n: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 1, (n / 250) as u8, (n % 250 + 1) as u8])
}

/// A self-signed certificate for 127.0.0.1 and localhost (P-256), made with the
/// openssl CLI: `(cert.pem, key.pem)` in `dir`, named after `name`.
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // An end-entity certificate (webpki refuses a CA as the server's own).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "openssl makes a certificate (is the openssl CLI installed?)"
    );
    (cert, key)
}

/// A TLS client configuration that trusts exactly `certs` (PEM files).
pub fn trusting(certs: &[&Path]) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for path in certs {
        let der = CertificateDer::from_pem_file(path).expect("PEM certificate");
        roots.add(der).expect("a root certificate");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The leaf certificate (DER) a fresh TLS handshake with `127.0.0.1:port` presents.
pub async fn served_certificate(port: u16, tls: std::sync::Arc<rustls::ClientConfig>) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let certs = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("a certificate");
    certs[0].as_ref().to_vec()
}

/// The DER of a PEM certificate file.
pub fn der_of(path: &Path) -> Vec<u8> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    CertificateDer::from_pem_file(path)
        .expect("PEM certificate")
        .as_ref()
        .to_vec()
}
