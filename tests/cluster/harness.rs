//! Real processes for the cluster tests: a throwaway `redis-server` on a free port, a
//! TCP proxy in front of it that a test can cut (a network partition of one node),
//! and sluice nodes (the real binary) with short leases.

pub use crate::ws_user::WsUser;
use serde_json::{json, Value};
use sluice::config::{DEV_ADMIN_KEY, DEV_JWT_SECRET};
use sluice::domain::ids::UserId;
use sluice::domain::jwt::JwtKey;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const LEASE_MS: u64 = 1500;
pub const RENEW_MS: u64 = 300;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `redis-server` child with its own temp dir; killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    // The child is waited for in `drop`.
    #[allow(clippy::zombie_processes)]
    pub async fn start() -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed: run scripts/test.sh, which installs it");
        for _ in 0..200 {
            if ping(port).await {
                return Redis {
                    child,
                    port,
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not come up on {port}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").await.is_ok()
        && matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// A TCP proxy to Redis for one node; `cut` severs every connection and refuses new
/// ones (the node is partitioned from Redis but still reachable by clients).
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
}

impl Proxy {
    pub async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cut);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::Acquire) {
                    continue;
                }
                let flag = Arc::clone(&flag);
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let watch = async {
                        while !flag.load(Ordering::Acquire) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        _ = watch => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
    }
}

/// One sluice process of the cluster.
pub struct Node {
    pub id: String,
    pub port: u16,
    child: Option<Child>,
    redis_url: String,
    store: tempfile::TempDir,
}

impl Node {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_base(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    // The child is waited for in `kill` / `drop`.
    #[allow(clippy::zombie_processes)]
    pub async fn start(id: &str, redis_url: &str) -> Node {
        let mut node = Node {
            id: id.to_owned(),
            port: free_port(),
            child: None,
            redis_url: redis_url.to_owned(),
            store: tempfile::tempdir().expect("temp dir"),
        };
        node.launch().await;
        node
    }

    #[allow(clippy::zombie_processes)]
    async fn launch(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .env("SLUICE__SERVER__BIND", format!("127.0.0.1:{}", self.port))
            .env("SLUICE__STORE__PATH", self.store.path())
            .env("SLUICE__SERVER__TICK_MS", "10")
            .env("SLUICE__LIMITS__JOIN_PER_IP_PER_SEC", "0")
            .env("SLUICE__LIMITS__PURCHASE_PER_IP_PER_SEC", "0")
            .env("SLUICE__LIMITS__ADMIN_PER_IP_PER_SEC", "0")
            .env("SLUICE__LIMITS__USER_PER_SEC", "0")
            .env("SLUICE__LOG__LEVEL", "warn")
            .env("SLUICE__CLUSTER__ENABLED", "true")
            .env("SLUICE__CLUSTER__NODE_ID", &self.id)
            .env("SLUICE__CLUSTER__REDIS_URL", &self.redis_url)
            .env("SLUICE__CLUSTER__LEASE_MS", LEASE_MS.to_string())
            .env("SLUICE__CLUSTER__RENEW_MS", RENEW_MS.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("binary starts");
        self.child = Some(child);
        let client = awc::Client::default();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/healthz", self.base())).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("node {} did not come up", self.id);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGKILL: the process dies without a word.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: a process that freezes (a long GC pause, a stalled VM).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {}", self.pid());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.signal_cont_quietly();
        self.kill9();
    }
}

impl Node {
    fn signal_cont_quietly(&self) {
        if self.child.is_some() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.pid().to_string()])
                .status();
        }
    }
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A client of the cluster: HTTP to any node, identities minted with the dev secret.
pub struct Client {
    http: awc::Client,
    jwt: JwtKey,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            http: awc::Client::builder()
                .timeout(Duration::from_secs(20))
                .finish(),
            jwt: JwtKey::new(DEV_JWT_SECRET.as_bytes()),
        }
    }
}

impl Client {
    pub fn token(&self, user: &str) -> String {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 3600;
        self.jwt.issue(&UserId::parse(user).expect("user id"), exp)
    }

    pub async fn request(
        &self,
        node: &Node,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> Resp {
        let url = format!("{}{path}", node.base());
        let req = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "PATCH" => self.http.patch(url),
            other => panic!("method {other}"),
        }
        .insert_header(("Authorization", format!("Bearer {bearer}")));
        let mut res = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", node.id));
        let bytes = res.body().limit(16 << 20).await.expect("body");
        Resp {
            status: res.status().as_u16(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn admin(&self, node: &Node, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.request(
            node,
            method,
            &format!("/api/admin{path}"),
            DEV_ADMIN_KEY,
            body,
        )
        .await
    }

    pub async fn user(
        &self,
        node: &Node,
        user: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let t = self.token(user);
        self.request(node, method, path, &t, body).await
    }

    pub async fn create_sale(&self, node: &Node, id: &str, stock: u32, admission: Value) -> Value {
        let r = self
            .admin(
                node,
                "POST",
                "/activities",
                Some(json!({"id": id, "name": id, "kind": "sale", "stock": stock, "admission": admission})),
            )
            .await;
        assert_eq!(r.status, 201, "create {id}: {}", r.body);
        r.body
    }

    /// The owner of `id` as `node` sees it, once it is one of `allowed`.
    pub async fn owner(&self, node: &Node, id: &str, allowed: &[&str]) -> (String, u64) {
        for _ in 0..400 {
            let v = self.admin(node, "GET", "/cluster", None).await.body;
            let found = v["activities"].as_array().and_then(|a| {
                a.iter()
                    .find(|x| x["id"] == id)
                    .and_then(|x| Some((x["owner"].as_str()?.to_owned(), x["fence"].as_u64()?)))
            });
            if let Some((o, f)) = found {
                if allowed.contains(&o.as_str()) {
                    return (o, f);
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no owner of {id} among {allowed:?} as {} sees it", node.id);
    }

    /// The activity's admin view through `node`, retried while the activity moves.
    pub async fn view(&self, node: &Node, id: &str) -> Value {
        for _ in 0..400 {
            let r = self
                .admin(node, "GET", &format!("/activities/{id}"), None)
                .await;
            if r.status == 200 {
                return r.body;
            }
            assert_eq!(r.code(), "unavailable", "view {id}: {}", r.body);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("activity {id} did not come back");
    }

    pub async fn assert_invariant(&self, node: &Node, id: &str) -> Value {
        let v = self.view(node, id).await;
        let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
        assert_eq!(n("capacity"), n("available") + n("held") + n("sold"), "{v}");
        v
    }

    pub async fn ws(&self, node: &Node, id: &str, user: &str, ticket: Option<&str>) -> WsUser {
        let mut url = format!(
            "{}/ws/activities/{id}?access_token={}",
            node.ws_base(),
            self.token(user)
        );
        if let Some(t) = ticket {
            url.push_str(&format!("&ticket={t}"));
        }
        let (_, framed) = self
            .http
            .ws(url)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{user} connects to {}: {e}", node.id));
        WsUser {
            framed,
            user: user.to_owned(),
        }
    }
}
