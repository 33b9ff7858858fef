//! Who is on the page without JavaScript, and what it remembers for them: cookies
//! written and read by hand (the identity token, the ticket, the language, the refresh
//! choice) and the form token that ties every form to the identity cookie.
//!
//! The identity cookie holds the same HS256 token the API takes as a bearer: it is
//! `HttpOnly` (scripts cannot read it), `SameSite=Lax` (other sites' forms do not send
//! it) and `Secure` over HTTPS, and it lives for the browser session. It is only ever
//! read by the page's own form handlers: the JSON API keeps taking bearers only.

use crate::domain::ids::UserId;
use crate::http::state::AppState;
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

pub const ID_COOKIE: &str = "sluice_id";
pub const TICKET_COOKIE: &str = "sluice_ticket";
pub const LANG_COOKIE: &str = "sluice_lang";
pub const REFRESH_COOKIE: &str = "sluice_refresh";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// How long a cookie lives.
#[derive(Clone, Copy)]
pub enum Life {
    /// Until the browser closes.
    Session,
    Secs(u64),
    /// Deletes it.
    Gone,
}

/// A `Set-Cookie` value. Values are tokens, tickets and language codes, none of which
/// contain `;`, `,` or spaces.
pub fn set_cookie(
    req: &HttpRequest,
    name: &str,
    value: &str,
    path: &str,
    life: Life,
    http_only: bool,
) -> String {
    let mut c = format!("{name}={value}; Path={path}; SameSite=Lax");
    match life {
        Life::Session => {}
        Life::Secs(s) => c.push_str(&format!("; Max-Age={s}")),
        Life::Gone => c.push_str("; Max-Age=0"),
    }
    if http_only {
        c.push_str("; HttpOnly");
    }
    if req.connection_info().scheme() == "https" {
        c.push_str("; Secure");
    }
    c
}

/// A person signed in on the page.
pub struct PageUser {
    pub id: UserId,
    /// Their identity token: what the cookie holds.
    pub jwt: String,
    /// It came in the query (`?access_token=`, the host site's link): the cookie is
    /// still to be set.
    pub from_query: bool,
}

impl PageUser {
    /// The form token of this session: unguessable without the identity cookie, so a
    /// form posted from another site (which cannot read the cookie) fails.
    pub fn csrf(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"sluice page form\0")
            .chain_update(self.jwt.as_bytes())
            .finalize();
        URL_SAFE_NO_PAD.encode(digest)
    }

    /// True if `presented` is this session's form token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.csrf().as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// What the request says about identity.
pub enum Identity {
    None,
    User(PageUser),
    /// A token was presented but is expired or not ours.
    Invalid,
}

/// The person on the page: the query's token (the known-user link) first, then the
/// cookie.
pub fn page_user(st: &AppState, req: &HttpRequest) -> Identity {
    let from_query = query_param(req.query_string(), "access_token");
    let (jwt, from_query) = match (from_query, cookie(req, ID_COOKIE)) {
        (Some(q), _) => (q, true),
        (None, Some(c)) => (c, false),
        (None, None) => return Identity::None,
    };
    match st.jwt.verify(&jwt, st.clock.now_ms()) {
        Ok(id) => Identity::User(PageUser {
            id,
            jwt,
            from_query,
        }),
        Err(_) => Identity::Invalid,
    }
}

/// One parameter of a query string, decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    actix_web::web::Query::<std::collections::HashMap<String, String>>::from_query(query)
        .ok()
        .and_then(|q| q.into_inner().remove(name))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn cookies_are_found_among_others_and_set_with_their_protections() {
        let req = TestRequest::default()
            .insert_header(("cookie", "a=1; sluice_id=tok.en.sig; b=2"))
            .to_http_request();
        assert_eq!(cookie(&req, ID_COOKIE).as_deref(), Some("tok.en.sig"));
        assert_eq!(cookie(&req, TICKET_COOKIE), None);
        let c = set_cookie(&req, ID_COOKIE, "v", "/", Life::Session, true);
        assert_eq!(c, "sluice_id=v; Path=/; SameSite=Lax; HttpOnly");
        let gone = set_cookie(&req, TICKET_COOKIE, "", "/a/x", Life::Gone, true);
        assert!(gone.contains("Max-Age=0"));
    }

    #[test]
    fn the_form_token_belongs_to_one_identity() {
        let user = |jwt: &str| PageUser {
            id: UserId::parse("u1").expect("valid"),
            jwt: jwt.into(),
            from_query: false,
        };
        let a = user("a.b.c");
        assert!(a.csrf_matches(&a.csrf()));
        assert!(!a.csrf_matches(&user("a.b.d").csrf()));
        assert!(!a.csrf_matches(""));
    }
}
