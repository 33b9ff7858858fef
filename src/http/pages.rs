//! The waiting-room page (`/a/{id}`) and the operator dashboard (`/admin`), embedded
//! in the binary: no CDN, nothing fetched at run time.

use actix_web::web;
use actix_web::HttpResponse;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index));
}

async fn index() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("sluice: see /admin and /a/{activity_id}\n")
}
