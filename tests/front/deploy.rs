//! The deployment files: `sluice check-config` on the production example, and the
//! systemd unit through `systemd-analyze verify`.

use std::process::Command;

fn check_config(file: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check-config", "--config", file])
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/production.example.toml"
);

#[test]
fn the_production_example_checks_with_its_secrets_from_the_environment_and_prints_none() {
    let secrets = [
        (
            "SLUICE__AUTH__JWT_SECRET",
            "0123456789abcdef0123456789abcdef-jwt",
        ),
        (
            "SLUICE__ADMIN__API_KEY",
            "0123456789abcdef0123456789abcdef-admin",
        ),
        (
            "SLUICE__TOKENS__SECRET",
            "0123456789abcdef0123456789abcdef-tokens",
        ),
        (
            "SLUICE__SINK__URL",
            "postgres://sluice:pg-password@127.0.0.1/sluice",
        ),
    ];
    let (ok, out, err) = check_config(EXAMPLE, &secrets);
    assert!(ok, "{err}");
    assert!(out.contains("env = \"production\""), "{out}");
    assert!(
        out.contains("postgres://sluice:***@127.0.0.1/sluice"),
        "{out}"
    );
    for (_, secret) in secrets {
        assert!(!out.contains(secret), "{secret} printed");
    }
    assert!(!out.contains("pg-password"));

    // Without them: a clear message naming the key, non-zero exit.
    let (ok, _, err) = check_config(EXAMPLE, &secrets[3..]);
    assert!(!ok);
    assert!(err.contains("auth.jwt_secret"), "{err}");
    let (ok, _, err) = check_config(
        EXAMPLE,
        &[("SLUICE__SERVER__TRUSTED_PROXIES", "10.0.0.0/40")],
    );
    assert!(!ok);
    assert!(err.contains("server.trusted_proxies"), "{err}");
}

#[test]
fn a_typo_or_a_missing_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[server]\nbindd = \"0.0.0.0:80\"\n").expect("write");
    let (ok, _, err) = check_config(&typo.display().to_string(), &[]);
    assert!(!ok && err.contains("server.bindd"), "{err}");
    let (ok, _, err) = check_config("/nonexistent/sluice.toml", &[]);
    assert!(!ok && err.contains("/nonexistent/sluice.toml"), "{err}");
    let tls = dir.path().join("tls.toml");
    std::fs::write(
        &tls,
        "[server.tls]\ncert_path = \"/nonexistent.pem\"\nkey_path = \"/nonexistent.key\"\n",
    )
    .expect("write");
    let (ok, _, err) = check_config(&tls.display().to_string(), &[]);
    assert!(!ok && err.contains("server.tls.cert_path"), "{err}");
}

#[test]
#[ignore = "needs systemd-analyze (scripts/test.sh runs it)"]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/sluice.service"
    ))
    .expect("unit file");
    // The unit names the installed binary; verify it against the one just built.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sluice.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/sluice", env!("CARGO_BIN_EXE_sluice")),
    )
    .expect("write");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
