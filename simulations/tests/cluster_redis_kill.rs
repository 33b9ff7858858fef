//! `simulate cluster --kill redis-primary` end to end with a small crowd: the
//! real `simulate` and `sluice` binaries (debug), and real `redis-server`
//! processes as the primary, its replica and three sentinels, started and
//! stopped by the simulator itself.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The sluice binary next to `simulate` (`cargo build -p sluice`), or `SLUICE_BIN`.
fn sluice_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_BIN") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_simulate")).with_file_name("sluice")
}

#[test]
#[ignore = "needs redis-server and the sluice binary (cargo build -p sluice): run with --include-ignored"]
fn a_redis_primary_killed_mid_sale_is_followed_and_every_check_passes() {
    let sluice = sluice_binary();
    assert!(
        sluice.is_file(),
        "{} missing: cargo build -p sluice (or set SLUICE_BIN)",
        sluice.display()
    );
    let out = std::env::temp_dir().join(format!("sluice-sim-redis-kill-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("creates the report dir");
    let json = out.join("report.json");
    let run = Command::new(env!("CARGO_BIN_EXE_simulate"))
        .arg("cluster")
        .arg("--spawn-server")
        .arg(&sluice)
        .args(["--kill", "redis-primary", "--nodes", "3", "--users", "300"])
        .args(["--stock", "60", "--rate", "20", "--max-active", "20"])
        .args(["--procs", "1", "--sources", "2", "--max-secs", "150"])
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(out.join("report.md"))
        .output()
        .expect("simulate runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let report: Value = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("no JSON report\n{stdout}\n{stderr}"));
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        run.status.success(),
        "simulate exited {:?}\n{stdout}\n{stderr}",
        run.status.code()
    );

    // The run must have gone through a promotion, not merely passed.
    let f = &report["data"]["cluster"]["redis_failover"];
    for step in [
        "promoted_secs",
        "followed_secs",
        "reattached_secs",
        "served_secs",
        "first_new_order_secs",
    ] {
        assert!(f[step].as_f64().is_some(), "{step} missing: {f}\n{stdout}");
    }
    assert_ne!(f["new_primary"], f["old_primary"], "{f}");
    assert!(f["new_primary"].is_string(), "{f}");
    let checks = report["checks"].as_array().expect("checks");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    for must in [
        "the sentinels promoted the replica after the Redis primary's kill",
        "every acknowledged order exists afterwards (GET /api/orders/{id} on surviving nodes)",
        "orders == min(stock, users)",
        "no purchase met token_expired",
    ] {
        assert!(names.contains(&must), "no check {must:?}: {names:?}");
    }
    let failed: Vec<&Value> = checks.iter().filter(|c| c["passed"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}\n{stdout}");
    assert_eq!(report["run_errors"], serde_json::json!([]), "{stdout}");
}
