//! The waiting page's state for browsers without JavaScript, inside `<noscript>`:
//! plain forms (sign in, join, leave, buy, pay, cancel) that post to `page_forms`, the
//! position with a progress element, and the refresh note with a way to stop it.

use crate::http::page_render::{
    clock, esc, eta_text, money, refresh_secs, utc, ActivityFacts, ActivityState, OrderFacts,
    PageModel, Place, TicketFacts,
};
use std::fmt::Write;

impl PageModel {
    fn hidden_csrf(&self) -> String {
        self.user.as_ref().map_or(String::new(), |(_, csrf)| {
            format!(
                "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
                esc(csrf)
            )
        })
    }

    /// A form with one button (join, leave, pay, cancel, sign out).
    fn button_form(&self, what: &str, extra: &str, label_key: &str, class: &str) -> String {
        format!(
            "<form method=\"post\" action=\"{}\" class=\"inline-form\">{}{extra}<button type=\"submit\" id=\"nojs-{label_key}\"{class}>{}</button></form>",
            self.action(what),
            self.hidden_csrf(),
            esc(self.lang.t(label_key)),
            class = if class.is_empty() {
                String::new()
            } else {
                format!(" class=\"{class}\"")
            },
        )
    }

    /// The person's state without JavaScript; empty when there is no activity to show.
    pub(crate) fn nojs(&self) -> String {
        let ActivityState::Found(a) = &self.activity else {
            return String::new();
        };
        let lang = self.lang;
        let mut s = String::from(
            "<noscript><section class=\"card\" id=\"nojs\" aria-labelledby=\"nojs-status\">",
        );
        let status = |s: &mut String, key: &str| {
            let _ = write!(s, "<h2 id=\"nojs-status\">{}</h2>", esc(lang.t(key)));
        };
        match &self.place {
            Place::SignedOut => {
                status(&mut s, "signInTitle");
                s.push_str(&self.login_form());
            }
            Place::NoPlace => {
                status(&mut s, "st_noplace");
                s.push_str(&self.join_form(a));
            }
            Place::Ordered(o) => {
                status(&mut s, "orderTitle");
                s.push_str(&self.order(o));
                if o.status == "cancelled" {
                    s.push_str(&self.join_form(a));
                }
            }
            Place::Ticket(t) => match t.status.as_str() {
                "waiting" => {
                    status(&mut s, "st_waiting");
                    s.push_str(&self.waiting(t));
                }
                "prequeue" => {
                    status(&mut s, "st_prequeue");
                    let _ = write!(s, "<p class=\"notice\">{}</p>", esc(lang.t("prequeueNote")));
                    s.push_str(&self.refresh_note(&self.place));
                    s.push_str(&self.button_form("leave", "", "leave", "danger"));
                }
                "admitted" => {
                    status(&mut s, "st_admitted");
                    match &t.pass {
                        Some(pass) => s.push_str(&self.gate_link(pass)),
                        None => s.push_str(&self.buy_form(a, t)),
                    }
                }
                other => {
                    let key = match other {
                        "expired" => "st_expired",
                        "sold_out" => "st_sold_out",
                        "closed" => "st_closed",
                        _ => "st_left",
                    };
                    status(&mut s, key);
                    s.push_str(&self.join_form(a));
                }
            },
        }
        if let Some((sub, _)) = &self.user {
            let _ = write!(
                s,
                "<p class=\"small muted\">{} <strong>{}</strong></p>",
                esc(lang.t("signedInAs")),
                esc(sub)
            );
            s.push_str(&self.button_form("logout", "", "signOut", "secondary small"));
        }
        s.push_str("</section></noscript>");
        s
    }

    /// A gate's way on: the hand-off that sets the pass cookie and redirects to the site.
    fn gate_link(&self, pass: &str) -> String {
        format!(
            "<p><a class=\"button\" id=\"nojs-gate\" href=\"/api/gate/{}/enter?pass={}\">{}</a></p>",
            self.id,
            esc(pass),
            esc(self.lang.t("gateContinue"))
        )
    }

    fn login_form(&self) -> String {
        let l = self.lang;
        // The code of an invite link outlives signing in.
        let invite = self.invite.as_deref().map_or(String::new(), |c| {
            format!(
                "<input type=\"hidden\" name=\"invite\" value=\"{}\">",
                esc(c)
            )
        });
        format!(
            "<form method=\"post\" action=\"{}\">{invite}<label for=\"nojs-username\">{}</label><input id=\"nojs-username\" name=\"username\" autocomplete=\"username\" required><label for=\"nojs-password\">{}</label><input id=\"nojs-password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required><div class=\"actions\"><button type=\"submit\" name=\"action\" value=\"login\">{}</button><button type=\"submit\" name=\"action\" value=\"register\" class=\"secondary\">{}</button></div></form>",
            self.action("login"),
            esc(l.t("username")),
            esc(l.t("password")),
            esc(l.t("signIn")),
            esc(l.t("register")),
        )
    }

    fn join_form(&self, a: &ActivityFacts) -> String {
        if matches!(a.phase.as_str(), "sold_out" | "closed") {
            return String::new();
        }
        if a.admission.join_pow_bits > 0 {
            return format!("<p class=\"notice\">{}</p>", esc(self.lang.t("nojsPow")));
        }
        if a.admission.access != "invite" {
            return self.button_form("join", "", "rejoin", "");
        }
        // Not `required`: whoever claimed a code may join again without it.
        let l = self.lang;
        format!(
            "<form method=\"post\" action=\"{}\">{}<label for=\"nojs-invite\">{}</label><p class=\"small muted\" id=\"nojs-invite-hint\">{}</p><input id=\"nojs-invite\" name=\"invite\" type=\"text\" value=\"{}\" autocomplete=\"off\" autocapitalize=\"none\" spellcheck=\"false\" maxlength=\"64\" aria-describedby=\"nojs-invite-hint\"><div class=\"actions\"><button type=\"submit\" id=\"nojs-rejoin\">{}</button></div></form>",
            self.action("join"),
            self.hidden_csrf(),
            esc(l.t("inviteCode")),
            esc(l.t("inviteHint")),
            esc(self.invite.as_deref().unwrap_or("")),
            esc(l.t("rejoin")),
        )
    }

    fn refresh_note(&self, place: &Place) -> String {
        let l = self.lang;
        let check = format!(
            "<a href=\"{}?refresh={}\">{}</a>",
            self.page_url(),
            if self.auto_refresh { "off" } else { "on" },
            esc(l.t(if self.auto_refresh {
                "nojsStop"
            } else {
                "nojsResume"
            })),
        );
        match refresh_secs(place) {
            Some(secs) if self.auto_refresh => format!(
                "<p class=\"small\">{} {check}</p>",
                esc(&l.tf("nojsRefresh", &[("s", &secs.to_string())]))
            ),
            _ => format!(
                "<p class=\"small\"><a href=\"{}?refresh=off\">{}</a> · {check}</p>",
                self.page_url(),
                esc(l.t("nojsCheck"))
            ),
        }
    }

    fn waiting(&self, t: &TicketFacts) -> String {
        let l = self.lang;
        let pos = t.position.unwrap_or(1);
        let ahead = match pos.saturating_sub(1) {
            0 => l.t("ahead0").to_owned(),
            1 => l.t("ahead1").to_owned(),
            n => l.tf("aheadN", &[("n", &n.to_string())]),
        };
        // Without a first position to compare with, progress is how little is left:
        // 1 of 1 ahead is 50%, the front is 100%.
        let progress = 100 / pos;
        let mut s = format!(
            "<p id=\"nojs-position\" class=\"position\">{}</p><p>{}</p>",
            esc(&l.tf("position", &[("n", &pos.to_string())])),
            esc(&ahead)
        );
        if let Some(eta) = t.eta_secs {
            let _ = write!(
                s,
                "<p>{}</p>",
                esc(&l.tf("eta", &[("t", &eta_text(l, eta))]))
            );
        }
        let _ = write!(
            s,
            "<label for=\"nojs-progress\" class=\"small\">{}</label><progress id=\"nojs-progress\" max=\"100\" value=\"{progress}\">{progress}%</progress>",
            esc(l.t("progressName"))
        );
        s.push_str(&self.refresh_note(&self.place));
        s.push_str(&self.button_form("leave", "", "leave", "danger"));
        s
    }

    fn buy_form(&self, a: &ActivityFacts, t: &TicketFacts) -> String {
        let l = self.lang;
        let mut s = String::new();
        if let (Some(at), Some(left)) = (&t.expires_at, self.token_left_secs) {
            let _ = write!(
                s,
                "<p id=\"nojs-buy-by\">{}</p>",
                esc(&l.tf("nojsBuyBy", &[("time", &utc(at)), ("left", &clock(left))]))
            );
        }
        let mut fields = String::new();
        if let Some(slots) = a.slots.as_ref().filter(|_| a.kind == "appointment") {
            let _ = write!(
                fields,
                "<label for=\"nojs-slot\">{}</label><select id=\"nojs-slot\" name=\"slot_id\">",
                esc(l.t("slot"))
            );
            let mut chosen = false;
            for slot in slots {
                let open = slot.available + slot.held > 0;
                let label = if slot.available > 0 {
                    l.tf(
                        "slotLeft",
                        &[("label", &slot.label), ("n", &slot.available.to_string())],
                    )
                } else if open {
                    l.tf("slotHeld", &[("label", &slot.label)])
                } else {
                    l.tf("slotFull", &[("label", &slot.label)])
                };
                let selected = if open && !chosen {
                    chosen = true;
                    " selected"
                } else {
                    ""
                };
                let disabled = if open { "" } else { " disabled" };
                let _ = write!(
                    fields,
                    "<option value=\"{}\"{selected}{disabled}>{}</option>",
                    esc(&slot.id),
                    esc(&label)
                );
            }
            fields.push_str("</select>");
        }
        let _ = write!(
            fields,
            "<label for=\"nojs-quantity\">{}</label><input id=\"nojs-quantity\" name=\"quantity\" type=\"number\" min=\"1\" max=\"{max}\" value=\"1\" inputmode=\"numeric\">",
            esc(l.t("quantity")),
            max = a.per_user_limit.max(1)
        );
        let _ = write!(
            s,
            "<form method=\"post\" action=\"{}\">{}{fields}<div class=\"actions\"><button type=\"submit\" id=\"nojs-buy\">{}</button></div></form>",
            self.action("buy"),
            self.hidden_csrf(),
            esc(l.t("buy"))
        );
        s
    }

    fn order(&self, o: &OrderFacts) -> String {
        let l = self.lang;
        let amount = if o.quantity > 1 {
            format!("{} (×{})", money(o.amount_cents), o.quantity)
        } else {
            money(o.amount_cents)
        };
        let mut s = format!(
            "<dl class=\"facts\"><div><dt>{}</dt><dd id=\"nojs-order-id\">{}</dd></div><div><dt>{}</dt><dd>{}</dd></div><div><dt>{}</dt><dd id=\"nojs-order-status\">{}</dd></div>",
            esc(l.t("orderId")),
            esc(&o.id),
            esc(l.t("amount")),
            esc(&amount),
            esc(l.t("status")),
            esc(l.t(&format!("os_{}", o.status))),
        );
        if let Some(slot) = &o.slot_id {
            let _ = write!(
                s,
                "<div><dt>{}</dt><dd>{}</dd></div>",
                esc(l.t("slot")),
                esc(slot)
            );
        }
        if o.status == "pending_payment" {
            let _ = write!(
                s,
                "<div><dt>{}</dt><dd>{} UTC</dd></div></dl><p>{}</p><div class=\"actions\">",
                esc(l.t("payBy")),
                esc(&utc(&o.pay_by)),
                esc(l.t("bought"))
            );
            let pay = "<input type=\"hidden\" name=\"action\" value=\"pay\">";
            let cancel = "<input type=\"hidden\" name=\"action\" value=\"cancel\">";
            if self.shop_pays {
                let _ = write!(s, "<p>{}</p>", esc(self.lang.t("shopPays")));
            } else {
                s.push_str(&self.button_form("order", pay, "payNow", ""));
            }
            s.push_str(&self.button_form("order", cancel, "cancelOrder", "danger"));
            s.push_str("</div>");
        } else {
            s.push_str("</dl>");
        }
        s
    }
}
