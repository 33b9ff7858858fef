//! Every route of the app in one place, and the one classifier of request paths
//! (the route label for metrics and the activity a path is about, for the request
//! span and for cluster forwarding).

use crate::domain::ids::{parse_order_id, ActivityId};
use crate::error::ApiError;
use crate::http::directory::Directory;
use crate::http::{
    activities, admin, admin_orders, audit, auth, gate, openapi, ops, orders, page_forms, pages,
    report, webhooks, ws_route,
};
use actix_web::web;

/// Registers every route; `directory` adds its own (cluster mode's node-to-node
/// endpoints).
pub fn configure(cfg: &mut web::ServiceConfig, directory: &dyn Directory) {
    // Buyers' routes first: the router tries routes in order, and each pattern with
    // a `{param}` costs a regex match (three of them ahead of purchase cost ~5% of
    // a purchase's CPU).
    // `verify` sits in front of every request of a gated site: first, under its
    // `/api/gate` scope (one prefix comparison for everything else).
    cfg.configure(gate::front_routes)
        .configure(activities::routes)
        .configure(orders::routes)
        .configure(gate::routes)
        .configure(ops::routes)
        .configure(auth::routes)
        .configure(report::routes)
        // Before admin's `/api/admin` scope, which would take their paths.
        .configure(admin_orders::routes)
        .configure(audit::routes)
        .configure(webhooks::routes)
        .configure(admin::routes)
        .configure(ws_route::routes)
        .configure(openapi::routes)
        .configure(|cfg| directory.routes(cfg))
        .configure(page_forms::routes)
        .configure(pages::routes)
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("no such endpoint"))
}

/// What a path is, as far as metrics, logs and forwarding need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified<'a> {
    /// The route's pattern, a bounded label ("other" for anything unknown).
    pub label: &'static str,
    /// The raw activity id segment of a path about one activity (unparsed).
    pub activity: Option<&'a str>,
    /// The raw order id of `/api/orders/{id}...`.
    pub order: Option<&'a str>,
}

/// Classifies a path from its segments alone: re-running the router's matcher for
/// the label (`match_pattern`) cost about 7% of a purchase's CPU.
pub fn classify(path: &str) -> Classified<'_> {
    let mut seg = path.trim_start_matches('/').split('/');
    let parts = (seg.next(), seg.next(), seg.next(), seg.next(), seg.next());
    let mut activity = None;
    let mut order = None;
    let label = match parts {
        (Some("api"), Some("activities"), Some(id), Some(action), _) => {
            activity = Some(id);
            match action {
                "join" => "/api/activities/{id}/join",
                "purchase" => "/api/activities/{id}/purchase",
                "tickets" => "/api/activities/{id}/tickets/{ticket}",
                "challenge" => "/api/activities/{id}/challenge",
                "fairness" => match parts.4 {
                    None => "/api/activities/{id}/fairness",
                    Some("log") => "/api/activities/{id}/fairness/log",
                    Some(_) => "other",
                },
                _ => "other",
            }
        }
        (Some("api"), Some("activities"), Some(id), None, _) => {
            activity = Some(id);
            "/api/activities/{id}"
        }
        (Some("api"), Some("activities"), None, _, _) => "/api/activities",
        (Some("api"), Some("orders"), Some(id), action, _) => {
            order = Some(id);
            match action {
                Some("pay") => "/api/orders/{id}/pay",
                Some("cancel") => "/api/orders/{id}/cancel",
                None => "/api/orders/{id}",
                Some(_) => "other",
            }
        }
        (Some("api"), Some("orders"), None, _, _) => "/api/orders",
        (Some("api"), Some("admin"), Some("activities"), id, _) => {
            activity = id;
            "/api/admin"
        }
        (Some("api"), Some("admin"), Some("orders"), id, _) => {
            order = id;
            "/api/admin"
        }
        (Some("api"), Some("admin"), _, _, _) => "/api/admin",
        (Some("api"), Some("gate"), Some(id), Some(action), None) => {
            activity = Some(id);
            match action {
                "verify" => "/api/gate/{id}/verify",
                "enter" => "/api/gate/{id}/enter",
                _ => "other",
            }
        }
        (Some(".well-known"), Some("jwks.json"), None, _, _) => "/.well-known/jwks.json",
        (Some("api"), Some("auth"), Some("login"), None, _) => "/api/auth/login",
        (Some("api"), Some("openapi.json"), None, _, _) => "/api/openapi.json",
        (Some("api"), Some("auth"), Some("register"), None, _) => "/api/auth/register",
        (Some("ws"), Some("activities"), Some(id), None, _) => {
            activity = Some(id);
            "/ws/activities/{id}"
        }
        (Some("ws"), Some("activities"), Some(id), Some(_), _) => {
            activity = Some(id);
            "other"
        }
        (Some("healthz"), None, _, _, _) => "/healthz",
        (Some("readyz"), None, _, _, _) => "/readyz",
        (Some("metrics"), None, _, _, _) => "/metrics",
        (Some("a"), Some(id), None, _, _) => {
            activity = Some(id);
            "/a/{id}"
        }
        (Some("a"), Some(id), Some(form), None, _) => {
            activity = Some(id);
            match form {
                "login" => "/a/{id}/login",
                "logout" => "/a/{id}/logout",
                "join" => "/a/{id}/join",
                "leave" => "/a/{id}/leave",
                "buy" => "/a/{id}/buy",
                "order" => "/a/{id}/order",
                _ => "other",
            }
        }
        (Some("admin"), None, _, _, _) => "/admin",
        (Some("admin"), Some("report"), None, _, _) => "/admin/report",
        (Some("assets"), Some(_), None, _, _) => "/assets/{file}",
        _ => "other",
    };
    Classified {
        label,
        activity: activity.filter(|s| !s.is_empty() && s.len() <= 64),
        order,
    }
}

/// The activity an API call is about (`/api/activities/{id}...`,
/// `/api/admin/activities/{id}...`, `/api/orders/{order id}...`) or a waiting page
/// and its forms (`/a/{id}...`, rendered from the activity's state): the calls a
/// cluster node forwards to the activity's owner.
pub fn activity_in(path: &str) -> Option<ActivityId> {
    if !path.starts_with("/api/") && !path.starts_with("/a/") {
        return None;
    }
    let c = classify(path);
    match (c.activity, c.order) {
        (Some(raw), _) => ActivityId::parse(raw).ok(),
        (None, Some(raw)) => parse_order_id(raw).map(|(a, _)| a),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_route_patterns() {
        for (path, label) in [
            (
                "/api/activities/drop-1/purchase",
                "/api/activities/{id}/purchase",
            ),
            ("/api/activities/drop-1/join", "/api/activities/{id}/join"),
            (
                "/api/activities/drop-1/tickets/t1",
                "/api/activities/{id}/tickets/{ticket}",
            ),
            ("/api/activities/drop-1", "/api/activities/{id}"),
            (
                "/api/activities/drop-1/fairness/log",
                "/api/activities/{id}/fairness/log",
            ),
            ("/api/activities", "/api/activities"),
            ("/api/orders/drop-1.a/pay", "/api/orders/{id}/pay"),
            ("/api/orders/drop-1.a", "/api/orders/{id}"),
            ("/api/orders", "/api/orders"),
            ("/api/openapi.json", "/api/openapi.json"),
            ("/api/admin/activities/drop-1/pause", "/api/admin"),
            ("/ws/activities/drop-1", "/ws/activities/{id}"),
            ("/healthz", "/healthz"),
            ("/a/drop-1", "/a/{id}"),
            ("/a/drop-1/join", "/a/{id}/join"),
            ("/a/drop-1/buy", "/a/{id}/buy"),
            ("/a/drop-1/nope", "other"),
            ("/nothing/here", "other"),
            ("/api/activities/drop-1/nope", "other"),
            ("/api/gate/door/verify", "/api/gate/{id}/verify"),
            ("/.well-known/jwks.json", "/.well-known/jwks.json"),
        ] {
            assert_eq!(classify(path).label, label, "{path}");
        }
    }

    #[test]
    fn the_activity_of_a_path_is_found_once_for_every_use() {
        assert_eq!(classify("/ws/activities/drop-1").activity, Some("drop-1"));
        assert_eq!(
            classify("/api/admin/activities/drop-1").activity,
            Some("drop-1")
        );
        assert_eq!(classify("/api/admin/events").activity, None);
        let id = |s: &str| ActivityId::parse(s).ok();
        assert_eq!(activity_in("/api/activities/drop-1/join"), id("drop-1"));
        assert_eq!(
            activity_in("/api/admin/activities/drop-1/stock"),
            id("drop-1")
        );
        assert_eq!(activity_in("/api/orders/drop-1.a/pay"), id("drop-1"));
        assert_eq!(activity_in("/api/admin/orders/drop-1.a/pay"), id("drop-1"));
        assert_eq!(activity_in("/api/admin/audit"), None);
        // A pass is verified where its gate runs (the revoked set lives there).
        assert_eq!(activity_in("/api/gate/door/verify"), id("door"));
        // The waiting page is rendered where the activity runs.
        assert_eq!(activity_in("/a/drop-1"), id("drop-1"));
        assert_eq!(activity_in("/a/drop-1/buy"), id("drop-1"));
        assert_eq!(activity_in("/assets/style.css"), None);
        // WebSocket paths and bad ids are never forwarded.
        assert_eq!(activity_in("/ws/activities/drop-1"), None);
        assert_eq!(activity_in("/api/activities/NOT VALID"), None);
        assert_eq!(activity_in("/api/orders/garbage"), None);
        assert_eq!(activity_in("/api/activities"), None);
    }
}
