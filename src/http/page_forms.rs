//! The waiting page served by the server (`GET /a/{id}`) and its forms, for browsers
//! without JavaScript: sign in, join, leave, buy, pay or cancel. Each form sends the
//! same actor message through the directory as its JSON twin in `activities`,
//! `orders` and `auth` (same rules, limits and durability), then redirects back to
//! the page (`303`), which shows the new state; a refusal is shown on the page.

use crate::actors::messages::{Admin as AdminCall, GetTicket, LeaveTicket, OrderCall};
use crate::domain::activity::TicketView;
use crate::domain::ids::parse_order_id;
use crate::error::{ApiError, ErrorCode};
use crate::http::activities::{join_as, purchase_as, ticket_param};
use crate::http::auth::{create_account, sign_in};
use crate::http::calls::{activity_id, call_id};
use crate::http::page_identity::{
    cookie, page_user, query_param, set_cookie, Identity, Life, PageUser, ID_COOKIE, LANG_COOKIE,
    REFRESH_COOKIE, TICKET_COOKIE,
};
use crate::http::page_render::{facts, ActivityState, OrderFacts, PageModel, Place, TicketFacts};
use crate::http::page_text::{choose, Lang};
use crate::http::state::AppState;
use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Form, Path};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/a/{id}", web::get().to(page))
        .route("/a/{id}/login", web::post().to(login))
        .route("/a/{id}/logout", web::post().to(logout))
        .route("/a/{id}/join", web::post().to(join))
        .route("/a/{id}/leave", web::post().to(leave))
        .route("/a/{id}/buy", web::post().to(buy))
        .route("/a/{id}/order", web::post().to(order));
}

/// One year, for the language choice.
const LANG_LIFE: Life = Life::Secs(365 * 24 * 3600);

fn lang_of(req: &HttpRequest) -> Lang {
    let explicit = query_param(req.query_string(), "lang").or_else(|| cookie(req, LANG_COOKIE));
    let accept = req
        .headers()
        .get("accept-language")
        .and_then(|h| h.to_str().ok());
    choose(explicit.as_deref(), accept)
}

/// A refusal as the page says it: the contract's message, in the page's language
/// when the page has it (the invite refusals, which a person can act on).
fn refusal_text(lang: Lang, e: &ApiError) -> String {
    use crate::domain::activity::{BAD_INVITE, INVITE_TAKEN, NO_INVITE};
    let key = match e.message.as_str() {
        NO_INVITE => "inviteMissing",
        BAD_INVITE => "inviteUnknown",
        INVITE_TAKEN => "inviteTaken",
        _ => return e.message.clone(),
    };
    lang.t(key).to_owned()
}

/// An invite code as a form or the address gives it: trimmed, none when empty.
fn invite_param(raw: Option<&str>) -> Option<String> {
    raw.map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

/// The page of activity `raw_id` for this request, with `refused` shown. `invite`
/// fills the invite field (the code just posted); else the address's `?invite=`.
async fn render(
    req: &HttpRequest,
    st: &AppState,
    raw_id: &str,
    refused: Option<&ApiError>,
    invite: Option<String>,
) -> HttpResponse {
    let lang = lang_of(req);
    let invite =
        invite.or_else(|| invite_param(query_param(req.query_string(), "invite").as_deref()));
    let identity = page_user(st, req);
    let id = activity_id(raw_id).map(|a| a.as_str().to_owned()).ok();
    let activity = match &id {
        None => ActivityState::NotFound,
        Some(id) => match call_id(st, id, AdminCall::View { admin: false }).await {
            Ok(view) => facts(&view).map_or(ActivityState::Unreachable, ActivityState::Found),
            Err(e) if e.code == ErrorCode::NotFound => ActivityState::NotFound,
            Err(_) => ActivityState::Unreachable,
        },
    };
    let id = id.unwrap_or_default();
    let mut flash = refused.map(|e| refusal_text(lang, e));
    let (place, token_left_secs) = match (&identity, &activity) {
        (Identity::User(user), ActivityState::Found(_)) => place_of(req, st, &id, user).await,
        (Identity::User(_), _) => (Place::NoPlace, None),
        (Identity::Invalid, _) => {
            flash.get_or_insert_with(|| lang.t("nojsSession").to_owned());
            (Place::SignedOut, None)
        }
        (Identity::None, _) => (Place::SignedOut, None),
    };
    let status = match (&activity, refused) {
        (ActivityState::NotFound, _) => StatusCode::NOT_FOUND,
        (_, Some(e)) => e.status_code(),
        _ => StatusCode::OK,
    };
    let refresh = query_param(req.query_string(), "refresh");
    let model = PageModel {
        lang,
        id: id.clone(),
        activity,
        place,
        user: match &identity {
            Identity::User(u) => Some((u.id.as_str().to_owned(), u.csrf())),
            _ => None,
        },
        flash,
        auto_refresh: match refresh.as_deref() {
            Some("off") => false,
            Some("on") => true,
            _ => cookie(req, REFRESH_COOKIE).as_deref() != Some("off"),
        },
        token_left_secs,
        shop_pays: st.payment == crate::config::PaymentMode::External,
        invite,
    };
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        // The known-user link carries a token: never pass the address on.
        .insert_header(("Referrer-Policy", "no-referrer"));
    let mut cookies = Vec::new();
    match &identity {
        Identity::User(u) if u.from_query => cookies.push(id_cookie(req, &u.jwt)),
        Identity::Invalid => cookies.push(set_cookie(req, ID_COOKIE, "", "/", Life::Gone, true)),
        _ => {}
    }
    if let Some(l) = query_param(req.query_string(), "lang").and_then(|l| Lang::parse(&l)) {
        cookies.push(set_cookie(
            req,
            LANG_COOKIE,
            l.code(),
            "/",
            LANG_LIFE,
            false,
        ));
    }
    let here = page_path(&id);
    match refresh.as_deref() {
        Some("off") => cookies.push(set_cookie(
            req,
            REFRESH_COOKIE,
            "off",
            &here,
            Life::Session,
            true,
        )),
        Some("on") => cookies.push(set_cookie(req, REFRESH_COOKIE, "", &here, Life::Gone, true)),
        _ => {}
    }
    for c in cookies {
        res.append_header(("Set-Cookie", c));
    }
    res.body(model.render())
}

fn page_path(id: &str) -> String {
    format!("/a/{id}")
}

fn id_cookie(req: &HttpRequest, jwt: &str) -> String {
    set_cookie(req, ID_COOKIE, jwt, "/", Life::Session, true)
}

/// Where the person stands: their ticket (from the ticket cookie) and, once bought,
/// their order; a stale or foreign ticket is no place. With the token's time left.
async fn place_of(
    req: &HttpRequest,
    st: &AppState,
    id: &str,
    user: &PageUser,
) -> (Place, Option<u64>) {
    let Some(ticket) = cookie(req, TICKET_COOKIE).and_then(|t| ticket_param(&t).ok()) else {
        return (Place::NoPlace, None);
    };
    let get = GetTicket {
        user: user.id.clone(),
        ticket,
    };
    let Ok(view) = call_id(st, id, get).await else {
        return (Place::NoPlace, None);
    };
    let Some(t) = facts::<_, TicketFacts>(&view) else {
        return (Place::NoPlace, None);
    };
    if let Some((_, n)) = t.order_id.as_deref().and_then(parse_order_id) {
        let get = OrderCall::Get {
            n,
            user: Some(user.id.clone()),
        };
        if let Some(o) = call_id(st, id, get)
            .await
            .ok()
            .and_then(|o| facts::<_, OrderFacts>(&o.view()))
        {
            return (Place::Ordered(o), None);
        }
    }
    let left = view.expires_at.as_deref().and_then(|at| {
        let at =
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
        let at_ms = u64::try_from(at.unix_timestamp()).ok()? * 1000;
        Some(at_ms.saturating_sub(st.clock.now_ms()) / 1000)
    });
    (Place::Ticket(t), left)
}

async fn page(req: HttpRequest, st: Data<AppState>, id: Path<String>) -> HttpResponse {
    render(&req, &st, &id, None, None).await
}

/// Back to the page, which shows the new state (Post/Redirect/Get: a reload does not
/// post again).
fn see_page(id: &str) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::SeeOther();
    res.insert_header(("Location", page_path(id)))
        .insert_header(("Cache-Control", "no-store"));
    res
}

/// The signed-in person of a form, with the form token checked.
fn form_user(st: &AppState, req: &HttpRequest, csrf: &str) -> Result<PageUser, ApiError> {
    match page_user(st, req) {
        Identity::User(u) if !u.from_query && u.csrf_matches(csrf) => Ok(u),
        Identity::User(_) => Err(ApiError::new(
            ErrorCode::Forbidden,
            "this form is out of date; reload the page and try again",
        )),
        _ => Err(ApiError::unauthorized("sign in first")),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    action: Option<String>,
    /// The invite code of the address the person came by, kept for the join form.
    invite: Option<String>,
}

async fn login(
    req: HttpRequest,
    st: Data<AppState>,
    id: Path<String>,
    form: Form<LoginForm>,
) -> HttpResponse {
    let f = form.into_inner();
    let username = f.username.trim().to_owned();
    let invite = invite_param(f.invite.as_deref());
    let res = async {
        if f.action.as_deref() == Some("register") {
            create_account(&req, &st, &username, f.password.clone()).await?;
        }
        sign_in(&req, &st, &username, f.password).await
    }
    .await;
    match res {
        Ok(s) => {
            let mut res = see_page(&id);
            if let Some(code) = &invite {
                // Back to the address with the code, so the join form has it.
                let here = format!(
                    "{}?invite={}",
                    page_path(&id),
                    crate::http::page_render::url_encode(code)
                );
                res.insert_header(("Location", here));
            }
            res.append_header(("Set-Cookie", id_cookie(&req, &s.access_token)))
                .finish()
        }
        Err(e) => render(&req, &st, &id, Some(&e), invite).await,
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    req: HttpRequest,
    st: Data<AppState>,
    id: Path<String>,
    form: Form<CsrfForm>,
) -> HttpResponse {
    match form_user(&st, &req, &form.csrf) {
        Ok(_) => see_page(&id)
            .append_header((
                "Set-Cookie",
                set_cookie(&req, ID_COOKIE, "", "/", Life::Gone, true),
            ))
            .finish(),
        Err(e) => render(&req, &st, &id, Some(&e), None).await,
    }
}

#[derive(Deserialize)]
struct JoinForm {
    #[serde(default)]
    csrf: String,
    /// An invite-only activity's code (the field is shown for those only).
    invite: Option<String>,
}

async fn join(
    req: HttpRequest,
    st: Data<AppState>,
    id: Path<String>,
    form: Form<JoinForm>,
) -> HttpResponse {
    let f = form.into_inner();
    let invite = invite_param(f.invite.as_deref());
    let res = async {
        let user = form_user(&st, &req, &f.csrf)?;
        join_as(&req, &st, user.id, &id, None, invite.clone()).await
    }
    .await;
    match res {
        Ok(reply) => {
            let ticket = set_cookie(
                &req,
                TICKET_COOKIE,
                &reply.ticket.ticket,
                &page_path(&id),
                Life::Session,
                true,
            );
            see_page(&id).append_header(("Set-Cookie", ticket)).finish()
        }
        Err(e) => render(&req, &st, &id, Some(&e), invite).await,
    }
}

/// The person's ticket, from the cookie the join set.
fn ticket_of(req: &HttpRequest) -> Result<String, ApiError> {
    cookie(req, TICKET_COOKIE)
        .ok_or_else(|| ApiError::not_found("no such ticket"))
        .and_then(|t| ticket_param(&t))
}

/// The form's person and their ticket's current view.
async fn ticket_view(
    req: &HttpRequest,
    st: &AppState,
    id: &str,
    csrf: &str,
) -> Result<(PageUser, TicketView), ApiError> {
    let user = form_user(st, req, csrf)?;
    let get = GetTicket {
        user: user.id.clone(),
        ticket: ticket_of(req)?,
    };
    let view = call_id(st, id, get).await?;
    Ok((user, view))
}

/// After a form: back to the page, or the page with the refusal.
async fn answer<T>(
    req: &HttpRequest,
    st: &AppState,
    id: &str,
    res: Result<T, ApiError>,
) -> HttpResponse {
    match res {
        Ok(_) => see_page(id).finish(),
        Err(e) => render(req, st, id, Some(&e), None).await,
    }
}

async fn leave(
    req: HttpRequest,
    st: Data<AppState>,
    id: Path<String>,
    form: Form<CsrfForm>,
) -> HttpResponse {
    let res = async {
        let user = form_user(&st, &req, &form.csrf)?;
        let ticket = ticket_of(&req)?;
        let leave = LeaveTicket {
            user: user.id,
            ticket,
        };
        call_id(&st, &id, leave).await
    }
    .await;
    answer(&req, &st, &id, res).await
}

#[derive(Deserialize)]
struct BuyForm {
    #[serde(default)]
    csrf: String,
    quantity: Option<u32>,
    slot_id: Option<String>,
}

async fn buy(
    req: HttpRequest,
    st: Data<AppState>,
    id: Path<String>,
    form: Form<BuyForm>,
) -> HttpResponse {
    let f = form.into_inner();
    let res = async {
        let (user, view) = ticket_view(&req, &st, &id, &f.csrf).await?;
        // The token stays on the server: the page asks for it with the ticket.
        let token = view
            .token
            .ok_or_else(|| ApiError::new(ErrorCode::NotOpen, "it is not your turn to buy"))?;
        purchase_as(&req, &st, user.id, &id, &token, f.quantity, f.slot_id).await
    }
    .await;
    answer(&req, &st, &id, res).await
}

#[derive(Deserialize)]
struct OrderForm {
    #[serde(default)]
    csrf: String,
    action: String,
}

async fn order(
    req: HttpRequest,
    st: Data<AppState>,
    id: Path<String>,
    form: Form<OrderForm>,
) -> HttpResponse {
    let f = form.into_inner();
    let res = async {
        let (user, view) = ticket_view(&req, &st, &id, &f.csrf).await?;
        let (_, n) = view
            .order_id
            .as_deref()
            .and_then(parse_order_id)
            .ok_or_else(|| ApiError::not_found("no such order"))?;
        let user = Some(user.id);
        let call = match f.action.as_str() {
            "pay" => {
                crate::http::orders::buyer_may_pay(&st)?;
                OrderCall::Pay {
                    n,
                    user,
                    payment_ref: None,
                }
            }
            "cancel" => OrderCall::Cancel { n, user },
            _ => return Err(ApiError::invalid("action must be pay or cancel")),
        };
        call_id(&st, &id, call).await
    }
    .await;
    answer(&req, &st, &id, res).await
}
