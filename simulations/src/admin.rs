//! The admin and public activity endpoints the scenarios drive.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::http::{HttpClient, Response};

/// Counters of one slot (appointments).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlotView {
    pub id: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub capacity: i64,
    #[serde(default)]
    pub available: i64,
    #[serde(default)]
    pub held: i64,
    #[serde(default)]
    pub sold: i64,
}

/// The activity view's counters (missing ones read as 0 and are noticed by
/// the invariant checks, not by a parse failure).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActivityView {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub capacity: i64,
    #[serde(default)]
    pub available: i64,
    #[serde(default)]
    pub held: i64,
    #[serde(default)]
    pub sold: i64,
    #[serde(default)]
    pub paid: i64,
    #[serde(default)]
    pub cancelled: i64,
    #[serde(default)]
    pub waiting: i64,
    #[serde(default)]
    pub admitted_total: i64,
    #[serde(default)]
    pub slots: Vec<SlotView>,
}

/// Admin calls with the admin key.
#[derive(Clone)]
pub struct Admin {
    pub http: Arc<HttpClient>,
    pub key: String,
}

impl Admin {
    /// `POST /api/admin/activities`; `Err` describes the response.
    pub async fn create_activity(&self, spec: &Value) -> Result<ActivityView, String> {
        let r = self
            .call("POST", "/api/admin/activities", Some(spec))
            .await?;
        expect_view(r, 201)
    }

    pub async fn view(&self, id: &str) -> Result<ActivityView, String> {
        let r = self
            .call("GET", &format!("/api/admin/activities/{id}"), None)
            .await?;
        expect_view(r, 200)
    }

    /// `pause`, `resume` or `close`.
    pub async fn control(&self, id: &str, action: &str) -> Result<ActivityView, String> {
        let r = self
            .call(
                "POST",
                &format!("/api/admin/activities/{id}/{action}"),
                None,
            )
            .await?;
        expect_view(r, 200)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, String> {
        self.http
            .request(method, path, Some(&self.key), body)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))
    }
}

/// The public view (`GET /api/activities/{id}`), e.g. for slot availability.
pub async fn public_view(
    http: &HttpClient,
    id: &str,
    bearer: Option<&str>,
) -> Result<ActivityView, String> {
    let r = http
        .get(&format!("/api/activities/{id}"), bearer)
        .await
        .map_err(|e| format!("GET /api/activities/{id}: {e}"))?;
    expect_view(r, 200)
}

fn expect_view(r: Response, status: u16) -> Result<ActivityView, String> {
    if r.status != status {
        return Err(format!(
            "expected {status}, got {} {}",
            r.status,
            r.body_text()
        ));
    }
    serde_json::from_slice(&r.body)
        .map_err(|e| format!("bad activity view ({e}): {}", r.body_text()))
}
