//! Nothing acknowledged is lost: every order a client got 201/200 for is
//! read back (`GET /api/orders/{id}` as admin, spread over the surviving
//! nodes), and an order whose payment was acknowledged must read `paid`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::admin::Admin;
use crate::user::record::UserRecord;

/// Lookups in flight.
const CONCURRENCY: usize = 32;

#[derive(Debug, Clone, Default, Serialize)]
pub struct OrdersFound {
    pub acknowledged: usize,
    pub found: usize,
    /// 404: an acknowledged order the cluster does not know.
    pub missing: Vec<String>,
    /// Payment acknowledged, but the order does not read `paid`.
    pub not_paid: Vec<String>,
    /// Lookups that failed otherwise (transport, 5xx), with the last error.
    pub failed: usize,
    pub last_error: Option<String>,
}

impl OrdersFound {
    pub fn holds(&self) -> bool {
        self.missing.is_empty() && self.not_paid.is_empty() && self.failed == 0
    }

    pub fn describe(&self) -> String {
        let first = |v: &Vec<String>| v.iter().take(5).cloned().collect::<Vec<_>>();
        format!(
            "{} of {} found; {} missing {:?}; {} paid but not reading paid {:?}; {} lookups failed{}",
            self.found,
            self.acknowledged,
            self.missing.len(),
            first(&self.missing),
            self.not_paid.len(),
            first(&self.not_paid),
            self.failed,
            self.last_error
                .as_ref()
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default()
        )
    }
}

/// What one lookup said.
enum Lookup {
    Found {
        id: String,
        status: String,
        paid: bool,
    },
    Missing(String),
    Failed(String),
}

/// Reads every acknowledged order back through `admins` (round robin).
pub async fn check(admins: &[Admin], records: &[UserRecord]) -> OrdersFound {
    let mut out = OrdersFound::default();
    if admins.is_empty() {
        out.last_error = Some("no node left to ask".into());
        out.failed = records.iter().filter(|r| r.order.is_some()).count();
        return out;
    }
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (k, order) in records.iter().filter_map(|r| r.order.as_ref()).enumerate() {
        out.acknowledged += 1;
        let admin = admins[k % admins.len()].clone();
        let id = order.id.clone();
        let paid = order.status == "paid";
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire().await;
            lookup(&admin, id, paid).await
        });
    }
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(Lookup::Found { id, status, paid }) => {
                out.found += 1;
                if paid && status != "paid" {
                    out.not_paid.push(format!("{id}: {status}"));
                }
            }
            Ok(Lookup::Missing(id)) => out.missing.push(id),
            Ok(Lookup::Failed(e)) => {
                out.failed += 1;
                out.last_error = Some(e);
            }
            Err(e) => {
                out.failed += 1;
                out.last_error = Some(format!("lookup task: {e}"));
            }
        }
    }
    out
}

/// `GET /api/orders/{id}`, retried a few times on 503 and transport errors.
async fn lookup(admin: &Admin, id: String, paid: bool) -> Lookup {
    let path = format!("/api/orders/{id}");
    let mut last = String::new();
    for _ in 0..5 {
        match admin.http.get(&path, Some(&admin.key)).await {
            Ok(r) if r.status == 200 => {
                let order = r.json().and_then(|v| v.get("order").cloned());
                let field = |k: &str| {
                    order
                        .as_ref()
                        .and_then(|o| o.get(k)?.as_str().map(str::to_string))
                };
                if field("id").as_deref() != Some(id.as_str()) {
                    return Lookup::Failed(format!(
                        "GET {path}: 200 without that order: {}",
                        r.body_text()
                    ));
                }
                let status = field("status").unwrap_or_default();
                return Lookup::Found { id, status, paid };
            }
            Ok(r) if r.status == 404 => return Lookup::Missing(id),
            Ok(r) => last = format!("GET {path}: {} {}", r.status, r.body_text()),
            Err(e) => last = format!("GET {path}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Lookup::Failed(last)
}
