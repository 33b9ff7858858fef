//! The OpenAPI document (`GET /api/openapi.json`, `docs/openapi.json`):
//! - it lists exactly the routes the server registers (read from the code that
//!   registers them: `src/http/routes.rs` and each module's `routes`), and each of
//!   those routes is answered by the server (not by the "no such endpoint" default);
//! - the checked-in copy is what the server serves;
//! - `openapi-spec-validator` accepts it (ignored under plain `cargo test`;
//!   `scripts/test.sh` runs it and installs the validator).
//!
//! Regenerate the checked-in copy with
//! `SLUICE_WRITE_OPENAPI=1 cargo test --test openapi served_document_is_checked_in`.

mod common;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const CHECKED_IN: &str = "docs/openapi.json";
const REGENERATE: &str =
    "SLUICE_WRITE_OPENAPI=1 cargo test --test openapi served_document_is_checked_in";

/// Registered routes left out of the document, by name, and why.
const NOT_DOCUMENTED: &[(&str, &str, &str)] = &[
    ("GET", "/", "a redirect to the dashboard page"),
    ("GET", "/admin", "the operator dashboard, an HTML page"),
    ("GET", "/admin/report", "the operator's report page, HTML"),
    ("GET", "/assets/report.js", "the report page's script"),
    ("GET", "/assets/{file}", "the pages' static assets"),
    ("GET", "/a/{id}", "the waiting page, HTML (API.md 15)"),
    (
        "POST",
        "/a/{id}/login",
        "a form of the waiting page (HTML, CSRF)",
    ),
    (
        "POST",
        "/a/{id}/logout",
        "a form of the waiting page (HTML, CSRF)",
    ),
    (
        "POST",
        "/a/{id}/join",
        "a form of the waiting page (HTML, CSRF)",
    ),
    (
        "POST",
        "/a/{id}/leave",
        "a form of the waiting page (HTML, CSRF)",
    ),
    (
        "POST",
        "/a/{id}/buy",
        "a form of the waiting page (HTML, CSRF)",
    ),
    (
        "POST",
        "/a/{id}/order",
        "a form of the waiting page (HTML, CSRF)",
    ),
];

/// `configure` calls of `routes::configure` that are not route modules: the
/// directory's own routes are cluster mode's node-to-node `/internal/*` endpoints
/// (`src/cluster`), answered only to other nodes (404 to anyone else, API.md 12).
const NOT_MODULES: &[&str] = &["|cfg| directory.routes(cfg)"];

fn read(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The string literal at the start of `s` (after `"`), and the rest.
fn literal(s: &str) -> (&str, &str) {
    let s = s.strip_prefix('"').expect("a string literal");
    let end = s.find('"').expect("a closed string literal");
    (&s[..end], &s[end + 1..])
}

/// Every `(METHOD, path)` a module's `pub fn <func>` (`routes`, or `front_routes`
/// for those registered ahead of all others) registers: `.route("p",
/// web::m()...)`, under its `web::scope("prefix")` if it has one.
fn module_routes(module: &str, func: &str) -> Vec<(String, String)> {
    let src = read(&format!("src/http/{module}.rs"));
    let start = src
        .find(&format!("pub fn {func}(cfg: &mut web::ServiceConfig)"))
        .unwrap_or_else(|| panic!("src/http/{module}.rs has no `pub fn {func}`"));
    let body = &src[start..];
    let body = &body[..body.find("\n}\n").expect("the end of `routes`")];
    let flat: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let scopes: Vec<&str> = flat
        .match_indices("web::scope(")
        .map(|(i, _)| i)
        .map(|i| literal(&flat[i + 11..]).0)
        .collect();
    assert!(
        scopes.len() <= 1,
        "{module}: one scope at most is understood here"
    );
    let prefix = scopes.first().copied().unwrap_or("");
    let mut out = Vec::new();
    for (i, _) in flat.match_indices(".route(") {
        let (path, rest) = literal(&flat[i + 7..]);
        let rest = rest
            .strip_prefix(",web::")
            .expect("`, web::<method>()` after the path");
        let method = &rest[..rest.find('(').expect("a method call")];
        out.push((method.to_uppercase(), format!("{prefix}{path}")));
    }
    assert!(
        !out.is_empty(),
        "no routes found in src/http/{module}.rs {func}"
    );
    out
}

/// Every route the server registers, from `routes::configure`.
fn registered() -> BTreeSet<(String, String)> {
    let src = read("src/http/routes.rs");
    let start = src.find("pub fn configure(").expect("routes::configure");
    let body = &src[start..];
    let body = &body[..body.find("\n}\n").expect("the end of configure")];
    let mut all = BTreeSet::new();
    let mut modules = 0;
    for (i, _) in body.match_indices(".configure(") {
        let arg = &body[i + 11..];
        let arg = &arg[..arg.find(")\n").expect("one configure per line")];
        if NOT_MODULES.contains(&arg) {
            continue;
        }
        let (module, func) = arg
            .split_once("::")
            .filter(|(_, f)| ["routes", "front_routes"].contains(f))
            .unwrap_or_else(|| panic!("`.configure({arg})`: not `module::routes`; list it in NOT_MODULES with the reason, or teach this test"));
        all.extend(module_routes(module, func));
        modules += 1;
    }
    assert!(modules >= 8, "found only {modules} route modules");
    all
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[actix_rt::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let app = common::spawn_app().await;
    let res = app.request("GET", "/api/openapi.json", None, None).await;
    assert_eq!(res.status, 200);
    let doc = res.body;
    assert_eq!(doc["openapi"], "3.1.0");

    let registered = registered();
    let excluded: BTreeSet<(String, String)> = NOT_DOCUMENTED
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    for e in &excluded {
        assert!(
            registered.contains(e),
            "{e:?} is excluded but not registered: drop it from NOT_DOCUMENTED"
        );
    }
    let expected: BTreeSet<_> = registered.difference(&excluded).cloned().collect();
    let documented = documented(&doc);
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "registered but not in the document: {missing:?}\nin the document but not registered: {extra:?}\n(add #[utoipa::path] and list the handler in src/http/openapi.rs, then {REGENERATE})"
    );

    // The parse of the registering code is checked against the running server: each
    // route (documented or not) is answered by its handler, never by the default
    // service ("no such endpoint", also what a wrong method gets).
    for (method, path) in &registered {
        let concrete = path
            .replace("{id}", "probe-1")
            .replace("{ticket}", "probe-ticket")
            .replace("{file}", "probe.css");
        let res = app.request(method, &concrete, None, None).await;
        assert!(
            !(res.status == 404 && res.body["error"]["message"] == "no such endpoint"),
            "{method} {path} ({concrete}) is not served"
        );
    }
    // And a route that is not registered is not (the probe can tell).
    let res = app.request("GET", "/api/not-a-route", None, None).await;
    assert_eq!(res.body["error"]["message"], "no such endpoint");
}

#[actix_rt::test]
async fn served_document_is_checked_in() {
    let app = common::spawn_app().await;
    let res = app
        .client
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .expect("GET /api/openapi.json")
        .body()
        .await
        .expect("the body");
    let served = String::from_utf8(res.to_vec()).expect("UTF-8");
    assert_eq!(served, sluice::http::openapi::render());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CHECKED_IN);
    if std::env::var_os("SLUICE_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &served).expect("write docs/openapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == served,
        "{CHECKED_IN} differs from what the server serves; regenerate it with\n    {REGENERATE}"
    );
}

/// Needs `python3 -m openapi_spec_validator` (`pip install openapi-spec-validator`);
/// `scripts/test.sh` installs it and runs this.
#[test]
#[ignore = "needs openapi-spec-validator (PyPI); scripts/test.sh runs it"]
fn document_passes_openapi_spec_validator() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, sluice::http::openapi::render()).expect("write the document");
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "openapi-spec-validator rejects the document (or is not installed: pip install openapi-spec-validator):\n{text}"
    );
    assert!(text.contains("OK"), "unexpected validator output: {text}");
}
