//! The waiting page as HTML: `assets/waiting.html` filled in for one person, in their
//! language, with their state rendered inside `<noscript>` (a form to sign in or join,
//! the position with a polite meta refresh, a form to buy, the order) so the page works
//! without JavaScript. Pure: the model is read from the contract's JSON views.

use crate::http::page_text::{Lang, I18N_JSON, LANGS};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use std::fmt::Write;

/// Everything but RFC 3986's unreserved characters is escaped in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `s` for a query value (an invite code in a link).
pub(crate) fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

const TEMPLATE: &str = include_str!("assets/waiting.html");

/// The public activity view, as far as the page shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct ActivityFacts {
    pub name: String,
    pub kind: String,
    pub phase: String,
    pub opens_at: Option<String>,
    pub price_cents: u64,
    pub per_user_limit: u32,
    pub capacity: u64,
    pub available: u64,
    #[serde(default)]
    pub slots: Option<Vec<SlotFacts>>,
    pub admission: AdmissionFacts,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SlotFacts {
    pub id: String,
    pub label: String,
    pub available: u64,
    pub held: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AdmissionFacts {
    #[serde(default)]
    pub join_pow_bits: u8,
    /// `"invite"` for an invite-only activity; absent (empty) when open.
    #[serde(default)]
    pub access: String,
}

/// The ticket view (`GET /api/activities/{id}/tickets/{ticket}`).
#[derive(Debug, Clone, Deserialize)]
pub struct TicketFacts {
    pub status: String,
    pub position: Option<u64>,
    pub eta_secs: Option<u64>,
    pub expires_at: Option<String>,
    pub opens_at: Option<String>,
    pub order_id: Option<String>,
    /// A gate's pass, once admitted.
    #[serde(default)]
    pub pass: Option<String>,
}

/// The order view (`ORDER` of the contract).
#[derive(Debug, Clone, Deserialize)]
pub struct OrderFacts {
    pub id: String,
    pub slot_id: Option<String>,
    pub quantity: u32,
    pub amount_cents: u64,
    pub status: String,
    pub pay_by: String,
}

/// Reads one of the contract's views into the page's model of it.
pub fn facts<V: serde::Serialize, F: serde::de::DeserializeOwned>(view: &V) -> Option<F> {
    serde_json::to_value(view)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

/// What the page knows about the activity.
pub enum ActivityState {
    Found(ActivityFacts),
    NotFound,
    /// Could not be asked (the store, a restart, another node): the page still loads.
    Unreachable,
}

/// Where the person stands.
pub enum Place {
    SignedOut,
    NoPlace,
    Ticket(TicketFacts),
    Ordered(OrderFacts),
}

pub struct PageModel {
    pub lang: Lang,
    /// A valid activity id (only `[a-z0-9-]`), or empty when the path named none.
    pub id: String,
    pub activity: ActivityState,
    pub place: Place,
    /// The signed-in user and the form token of their session.
    pub user: Option<(String, String)>,
    /// What went wrong with the last form, for a person.
    pub flash: Option<String>,
    /// False when the person asked the page to stop refreshing itself.
    pub auto_refresh: bool,
    /// Seconds the admission token has left (for `Place::Ticket` admitted).
    pub token_left_secs: Option<u64>,
    /// `payment.mode = "external"`: the shop confirms payment, the page offers no
    /// "pay" button.
    pub shop_pays: bool,
    /// The invite code to fill in (from `?invite=`, or the one just posted).
    pub invite: Option<String>,
}

/// Escapes text for HTML content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `12.50` from 1250 cents.
pub(crate) fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// `m:ss` or `h:mm:ss`, as the script's countdown shows it.
pub fn clock(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// `2026-12-01 10:00:00` from RFC 3339 (the page says UTC next to it).
pub(crate) fn utc(rfc3339: &str) -> String {
    rfc3339
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_owned()
}

pub(crate) fn eta_text(lang: Lang, secs: u64) -> String {
    if secs < 60 {
        return lang.t("etaSoon").to_owned();
    }
    let m = secs.div_ceil(60);
    if m < 60 {
        lang.tf("etaMin", &[("m", &m.to_string())])
    } else {
        lang.tf(
            "etaHour",
            &[("h", &(m / 60).to_string()), ("m", &(m % 60).to_string())],
        )
    }
}

/// How often the page without JavaScript reloads itself: often near the front, rarely
/// far back; never while the person has a form to fill (admitted) or nothing to wait for.
pub fn refresh_secs(place: &Place) -> Option<u64> {
    match place {
        Place::Ticket(t) if t.status == "waiting" => {
            let pos = t.position.unwrap_or(1);
            Some(if pos <= 10 {
                5
            } else {
                (t.eta_secs.unwrap_or(60) / 6).clamp(10, 30)
            })
        }
        Place::Ticket(t) if t.status == "prequeue" => Some(15),
        _ => None,
    }
}

impl PageModel {
    pub(crate) fn page_url(&self) -> String {
        format!("/a/{}", self.id)
    }

    pub(crate) fn action(&self, what: &str) -> String {
        format!("/a/{}/{what}", self.id)
    }

    fn title(&self) -> String {
        match &self.activity {
            ActivityState::Found(a) => format!("{} · sluice", a.name),
            ActivityState::NotFound => format!("{} · sluice", self.lang.t("notFoundTitle")),
            ActivityState::Unreachable => "sluice".to_owned(),
        }
    }

    /// The whole page.
    pub fn render(&self) -> String {
        let lang = self.lang;
        let found = match &self.activity {
            ActivityState::Found(a) => Some(a),
            _ => None,
        };
        let hidden = |on: bool| if on { "" } else { " hidden" };
        let error = self.flash.clone().or(match self.activity {
            ActivityState::NotFound => Some(lang.t("notFound").to_owned()),
            ActivityState::Unreachable => Some(lang.t("unreachable").to_owned()),
            ActivityState::Found(_) => None,
        });
        let mut out = String::with_capacity(TEMPLATE.len() + I18N_JSON.len() + 4096);
        let mut rest = TEMPLATE;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find("}}").expect("the template closes every {{");
            let name = &after[..end];
            rest = &after[end + 2..];
            let value = match name.strip_prefix("t:") {
                Some(key) => esc(lang.t(key)),
                None => match name {
                    "html_lang" => lang.html_tag().to_owned(),
                    "lang" => lang.code().to_owned(),
                    "payment" => if self.shop_pays {
                        "external"
                    } else {
                        "simulated"
                    }
                    .to_owned(),
                    "title" => esc(&self.title()),
                    "refresh" => self.refresh_meta(),
                    "lang_menu" => self.lang_menu(),
                    "activity_name" => esc(&match found {
                        Some(a) => a.name.clone(),
                        None if matches!(self.activity, ActivityState::NotFound) => {
                            lang.t("notFoundTitle").to_owned()
                        }
                        None => "sluice".to_owned(),
                    }),
                    "phase_class" => found.map_or(String::new(), |a| format!(" {}", esc(&a.phase))),
                    "phase_hidden" | "facts_hidden" => hidden(found.is_some()).to_owned(),
                    "phase_text" => {
                        found.map_or(
                            String::new(),
                            |a| esc(lang.t(&format!("phase_{}", a.phase))),
                        )
                    }
                    "price" => found.map_or("–".into(), |a| money(a.price_cents)),
                    "units_left" => found.map_or("–".into(), |a| {
                        format!("{} / {}", a.available, a.capacity)
                    }),
                    "per_user" => found.map_or("–".into(), |a| a.per_user_limit.to_string()),
                    "opens_hidden" => {
                        hidden(found.is_some_and(|a| a.opens_at.is_some())).to_owned()
                    }
                    "opens_at" => found
                        .and_then(|a| a.opens_at.as_deref())
                        .map_or("–".into(), |o| {
                            format!("<time datetime=\"{}\">{} UTC</time>", esc(o), esc(&utc(o)))
                        }),
                    "error_hidden" => hidden(error.is_some()).to_owned(),
                    "error" => esc(error.as_deref().unwrap_or("")),
                    "nojs" => self.nojs(),
                    // Inside <script>: only "</" could end it early.
                    "i18n_json" => I18N_JSON.replace("</", "<\\/"),
                    other => panic!("unknown template slot {other}"),
                },
            };
            out.push_str(&value);
        }
        out.push_str(rest);
        out
    }

    fn refresh_meta(&self) -> String {
        match refresh_secs(&self.place) {
            Some(secs) if self.auto_refresh => format!(
                "<noscript><meta http-equiv=\"refresh\" content=\"{secs}; url={}\"></noscript>",
                self.page_url()
            ),
            _ => String::new(),
        }
    }

    /// Links to the page in every language: they work without JavaScript, and the
    /// script switches in place instead.
    fn lang_menu(&self) -> String {
        let mut items = String::new();
        for code in LANGS {
            let l = Lang::parse(code).expect("LANGS parse");
            let current = if l == self.lang {
                " aria-current=\"true\""
            } else {
                ""
            };
            // An invite link stays one in every language.
            let invite = self
                .invite
                .as_deref()
                .map_or(String::new(), |c| format!("&amp;invite={}", url_encode(c)));
            let _ = write!(
                items,
                "<li><a href=\"{}?lang={code}{invite}\" hreflang=\"{tag}\" lang=\"{tag}\" data-lang=\"{code}\"{current}>{}</a></li>",
                self.page_url(),
                esc(l.t("langName")),
                tag = l.html_tag(),
            );
        }
        format!(
            "<details class=\"lang-menu\" id=\"lang-menu\"><summary><span data-i18n=\"language\">{}</span>: <span id=\"lang-current\">{}</span></summary><ul>{items}</ul></details>",
            esc(self.lang.t("language")),
            esc(self.lang.t("langName")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_escape_all_but_unreserved() {
        assert_eq!(url_encode("aZ9-._~"), "aZ9-._~");
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    fn activity() -> ActivityFacts {
        ActivityFacts {
            name: "Drop <1>".into(),
            kind: "sale".into(),
            phase: "open".into(),
            opens_at: None,
            price_cents: 1250,
            per_user_limit: 2,
            capacity: 10,
            available: 4,
            slots: None,
            admission: AdmissionFacts {
                join_pow_bits: 0,
                access: String::new(),
            },
        }
    }

    fn model(place: Place) -> PageModel {
        PageModel {
            lang: Lang::EN,
            id: "drop-1".into(),
            activity: ActivityState::Found(activity()),
            place,
            user: Some(("usr-1".into(), "csrf-x".into())),
            flash: None,
            auto_refresh: true,
            token_left_secs: None,
            shop_pays: false,
            invite: None,
        }
    }

    fn ticket(status: &str, position: Option<u64>) -> TicketFacts {
        TicketFacts {
            status: status.into(),
            position,
            eta_secs: Some(30),
            expires_at: Some("2026-12-01T10:02:00Z".into()),
            opens_at: None,
            order_id: None,
            pass: None,
        }
    }

    #[test]
    fn every_slot_of_the_template_is_filled_and_text_is_escaped() {
        let html = model(Place::NoPlace).render();
        assert!(!html.contains("{{"), "unfilled slot");
        assert!(html.contains("<h1 id=\"activity-name\">Drop &lt;1&gt;</h1>"));
        assert!(html.contains("<html lang=\"en\""));
        assert!(html.contains("action=\"/a/drop-1/join\""));
        assert!(html.contains("name=\"csrf\" value=\"csrf-x\""));
        assert!(
            !html.contains("http-equiv"),
            "nothing to wait for: no refresh"
        );
    }

    #[test]
    fn a_waiting_person_gets_a_polite_refresh_to_the_bare_url_and_a_way_to_stop_it() {
        let html = model(Place::Ticket(ticket("waiting", Some(3)))).render();
        assert!(html.contains("content=\"5; url=/a/drop-1\""));
        assert!(html.contains("You are number 3 in line"));
        assert!(html.contains("2 people ahead of you"));
        assert!(html.contains("?refresh=off"));
        let mut m = model(Place::Ticket(ticket("waiting", Some(3))));
        m.auto_refresh = false;
        assert!(!m.render().contains("http-equiv"));
    }

    #[test]
    fn an_admitted_person_gets_a_buy_form_and_no_refresh() {
        let mut m = model(Place::Ticket(ticket("admitted", None)));
        m.token_left_secs = Some(118);
        let html = m.render();
        assert!(html.contains("action=\"/a/drop-1/buy\""));
        assert!(html.contains("about 1:58 left"));
        assert!(!html.contains("http-equiv"));
    }

    #[test]
    fn an_admitted_gate_visitor_gets_the_link_on_to_the_site() {
        let t = TicketFacts {
            pass: Some("h.c.s".into()),
            ..ticket("admitted", None)
        };
        let html = model(Place::Ticket(t)).render();
        assert!(html.contains("href=\"/api/gate/drop-1/enter?pass=h.c.s\""));
        assert!(html.contains("Continue to the site"));
        assert!(!html.contains("action=\"/a/drop-1/buy\""));
    }

    #[test]
    fn an_invite_only_line_asks_for_the_code_and_keeps_the_one_of_the_link() {
        let open = model(Place::NoPlace).render();
        assert!(
            !open.contains("name=\"invite\""),
            "open lines ask for no code"
        );
        let mut m = model(Place::NoPlace);
        if let ActivityState::Found(a) = &mut m.activity {
            a.admission.access = "invite".into();
        }
        m.invite = Some("c0de\"x".into());
        let html = m.render();
        assert!(html.contains("<label for=\"nojs-invite\">Invite code</label>"));
        assert!(
            html.contains("id=\"nojs-invite\" name=\"invite\" type=\"text\" value=\"c0de&quot;x\"")
        );
        assert!(html.contains("href=\"/a/drop-1?lang=fr&amp;invite=c0de%22x\""));
        m.place = Place::SignedOut;
        m.user = None;
        let html = m.render();
        assert!(html.contains("<input type=\"hidden\" name=\"invite\" value=\"c0de&quot;x\">"));
    }

    /// The live page says the invite refusals in its language by their contract
    /// messages: a reworded message would leave it saying them in English.
    #[test]
    fn the_live_page_knows_the_invite_refusals_by_their_messages() {
        use crate::domain::activity::{BAD_INVITE, INVITE_TAKEN, NO_INVITE};
        let js = include_str!("assets/waiting.js");
        for m in [NO_INVITE, BAD_INVITE, INVITE_TAKEN] {
            assert!(js.contains(&format!("'{m}'")), "waiting.js lacks {m:?}");
        }
    }

    #[test]
    fn the_chinese_page_is_chinese_and_unknown_activities_say_so() {
        let mut m = model(Place::SignedOut);
        m.lang = Lang::parse("zh").expect("zh");
        m.user = None;
        let html = m.render();
        assert!(html.contains("<html lang=\"zh-CN\""));
        assert!(html.contains("登录后排队"));
        m.activity = ActivityState::NotFound;
        let html = m.render();
        assert!(html.contains("没有这个排队页面"));
        assert!(!html.contains("<noscript><section"));
    }

    #[test]
    fn with_external_payment_the_buyer_is_told_the_shop_confirms_it() {
        let order = OrderFacts {
            id: "drop-1.1".into(),
            slot_id: None,
            quantity: 1,
            amount_cents: 100,
            status: "pending_payment".into(),
            pay_by: "2026-12-01T10:15:00Z".into(),
        };
        let simulated = model(Place::Ordered(order.clone())).render();
        assert!(simulated.contains("value=\"pay\""));
        assert!(simulated.contains("data-payment=\"simulated\""));
        let mut m = model(Place::Ordered(order));
        m.shop_pays = true;
        let html = m.render();
        let nojs = &html[html.find("<noscript>").expect("noscript")..];
        assert!(!html.contains("value=\"pay\""), "no pay form");
        assert!(nojs.contains("The shop confirms your payment"));
        assert!(html.contains("value=\"cancel\""), "cancelling stays");
        assert!(html.contains("data-payment=\"external\""));
    }

    #[test]
    fn refresh_is_frequent_near_the_front_and_rare_far_back() {
        let far = TicketFacts {
            eta_secs: Some(600),
            ..ticket("waiting", Some(500))
        };
        assert_eq!(refresh_secs(&Place::Ticket(far)), Some(30));
        assert_eq!(
            refresh_secs(&Place::Ticket(ticket("waiting", Some(2)))),
            Some(5)
        );
        assert_eq!(refresh_secs(&Place::Ticket(ticket("admitted", None))), None);
        assert_eq!(clock(3725), "1:02:05");
        assert_eq!(clock(59), "0:59");
    }
}
