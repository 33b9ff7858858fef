//! The waiting page's texts: one table (`assets/i18n.json`, also sent to the page's
//! script), the languages it has, and the choice of one for a request (`?lang=`, the
//! `sluice_lang` cookie, then `Accept-Language`).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The table, embedded: `{ "<lang>": { "<key>": "<text>" } }`.
pub const I18N_JSON: &str = include_str!("assets/i18n.json");

/// The languages of the table, the first being the fallback of every missing key.
pub const LANGS: [&str; 5] = ["en", "zh", "es", "fr", "de"];

type Table = HashMap<String, HashMap<String, String>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str(I18N_JSON).expect("assets/i18n.json is checked by a unit test")
    })
}

/// One of `LANGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lang(&'static str);

impl Lang {
    pub const EN: Lang = Lang("en");

    /// A language of the table named by `code` (`zh`, `zh-CN`, `fr-ca`...): its
    /// primary subtag decides.
    pub fn parse(code: &str) -> Option<Lang> {
        let primary = code.split(['-', '_']).next()?.trim();
        LANGS
            .iter()
            .find(|l| l.eq_ignore_ascii_case(primary))
            .map(|l| Lang(l))
    }

    pub fn code(self) -> &'static str {
        self.0
    }

    /// The `lang` attribute of the page (Simplified Chinese is what the table holds).
    pub fn html_tag(self) -> &'static str {
        match self.0 {
            "zh" => "zh-CN",
            other => other,
        }
    }

    /// The text of `key`, English when this language lacks it, the key itself when
    /// no language has it.
    pub fn t(self, key: &str) -> &str {
        let t = table();
        t.get(self.0)
            .and_then(|m| m.get(key))
            .or_else(|| t.get("en").and_then(|m| m.get(key)))
            .map_or(key, String::as_str)
    }

    /// `t` with `{name}` placeholders filled.
    pub fn tf(self, key: &str, args: &[(&str, &str)]) -> String {
        let mut s = self.t(key).to_owned();
        for (name, value) in args {
            s = s.replace(&format!("{{{name}}}", name = name), value);
        }
        s
    }
}

/// The language for a request: an explicit choice (`?lang=` or the cookie) first,
/// else the best of `Accept-Language` the table has, else English.
pub fn choose(explicit: Option<&str>, accept_language: Option<&str>) -> Lang {
    explicit
        .and_then(Lang::parse)
        .or_else(|| accept_language.and_then(from_accept_language))
        .unwrap_or(Lang::EN)
}

/// The highest-weighted language of an `Accept-Language` header the table has
/// (RFC 9110 §12.5.4; `q=0` means "not this one").
fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(Lang, f32)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        if let Some(lang) = Lang::parse(tag) {
            if best.is_none_or(|(_, bq)| q > bq) {
                best = Some((lang, q));
            }
        }
    }
    best.map(|(l, _)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_english_key_and_the_same_placeholders() {
        let t = table();
        let en = &t["en"];
        for lang in LANGS {
            let m = t.get(lang).unwrap_or_else(|| panic!("{lang} missing"));
            for (key, text) in en {
                let other = m.get(key).unwrap_or_else(|| panic!("{lang} lacks {key}"));
                let names = |s: &str| {
                    let mut v: Vec<String> = s
                        .split('{')
                        .skip(1)
                        .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(names(text), names(other), "{lang}.{key}");
            }
            assert_eq!(m.len(), en.len(), "{lang} has keys English lacks");
        }
    }

    #[test]
    fn accept_language_picks_the_best_language_the_table_has() {
        assert_eq!(choose(None, Some("zh-CN,zh;q=0.9,en;q=0.8")), Lang("zh"));
        assert_eq!(choose(None, Some("ja, fr-CA;q=0.7, en;q=0.5")), Lang("fr"));
        assert_eq!(choose(None, Some("de;q=0, es;q=0.2")), Lang("es"));
        assert_eq!(choose(None, Some("ja")), Lang::EN);
        assert_eq!(choose(None, None), Lang::EN);
        assert_eq!(choose(Some("zh"), Some("de")), Lang("zh"));
        assert_eq!(choose(Some("xx"), Some("de")), Lang("de"));
    }

    #[test]
    fn texts_fall_back_to_english_and_fill_placeholders() {
        assert_eq!(Lang("de").t("buy"), "Kaufen");
        assert_eq!(
            Lang::EN.tf("position", &[("n", "3")]),
            "You are number 3 in line"
        );
        assert_eq!(Lang::EN.t("no-such-key"), "no-such-key");
        assert_eq!(Lang::parse("zh").map(Lang::html_tag), Some("zh-CN"));
    }
}
