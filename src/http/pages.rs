//! The operator dashboard (`/admin`) and the pages' static assets, embedded in the
//! binary with `include_str!`: no CDN, nothing fetched at run time. The waiting page
//! itself (`/a/{id}`) is rendered per person by `page_forms` and `page_render`.

use actix_web::web::{self, Path};
use actix_web::HttpResponse;

const WAITING_JS: &str = include_str!("assets/waiting.js");
const ADMIN_HTML: &str = include_str!("assets/admin.html");
const ADMIN_JS: &str = include_str!("assets/admin.js");
const ADMIN_WEBHOOKS_JS: &str = include_str!("assets/admin_webhooks.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/admin", web::get().to(admin))
        .route("/assets/{file}", web::get().to(asset));
}

fn page(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

async fn index() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", "/admin"))
        .finish()
}

async fn admin() -> HttpResponse {
    page("text/html; charset=utf-8", ADMIN_HTML)
}

async fn asset(file: Path<String>) -> HttpResponse {
    match file.as_str() {
        "waiting.js" => page("text/javascript; charset=utf-8", WAITING_JS),
        "admin.js" => page("text/javascript; charset=utf-8", ADMIN_JS),
        "admin_webhooks.js" => page("text/javascript; charset=utf-8", ADMIN_WEBHOOKS_JS),
        "style.css" => page("text/css; charset=utf-8", STYLE_CSS),
        _ => crate::error::ApiError::not_found("no such asset").into_response(),
    }
}
