//! The server's post-event report (`GET /api/admin/activities/{id}/report`) next to
//! what the simulated users measured themselves: its figures, and checks that the
//! counts are equal and the wait percentiles agree within a stated allowance.

use serde_json::Value;

use crate::client::http::HttpClient;
use crate::report::Report;
use crate::stats::percentile_sorted;
use crate::user::record::UserRecord;

/// The report rounds waits to 0.1 s: up to 50 ms either way.
const ROUNDING_MS: f64 = 50.0;
/// Its wait histogram keeps a value to within 1/64 of it (half a bucket each way is
/// 1/128; the percentile's bucket is shown by its middle).
const BUCKET_SHARE: f64 = 1.0 / 64.0;

/// Fetches the report, records its figures, and checks it against `records`:
/// `joins`, `admitted` and `orders` equal to the users' own counts, and wait p50/p99
/// within the bounds the users' own times put on them (`wait_checks`). `opens_at_ms`:
/// the activity's opening time, if it had one.
pub async fn compare_into(
    report: &mut Report,
    http: &HttpClient,
    key: &str,
    id: &str,
    records: &[UserRecord],
    opens_at_ms: Option<f64>,
) {
    let path = format!("/api/admin/activities/{id}/report");
    let body = match http.request("GET", &path, Some(key), None).await {
        Ok(r) if r.status == 200 => r.json(),
        Ok(r) => {
            report
                .run_errors
                .push(format!("GET {path}: {} {}", r.status, r.body_text()));
            None
        }
        Err(e) => {
            report.run_errors.push(format!("GET {path}: {e}"));
            None
        }
    };
    let Some(b) = body else { return };
    figures(report, &b);
    let count = |f: fn(&UserRecord) -> bool| records.iter().filter(|r| f(r)).count() as u64;
    for (name, server, users) in [
        ("joins", &b["joins"], count(|r| r.joined_ms.is_some())),
        (
            "admitted",
            &b["admitted"],
            count(|r| r.admitted_ms.is_some()),
        ),
        ("orders", &b["orders"], count(|r| r.order.is_some())),
    ] {
        report.check(
            &format!("report {name} == users' count"),
            server.as_u64() == Some(users),
            format!("report {server}, users {users}"),
        );
    }
    wait_checks(report, &b, records, opens_at_ms);
}

/// The report's wait p50/p99 against the users'. Each user bounds the server's wait
/// for it (`UserRecord::server_wait_bounds_ms`); a percentile is monotone in every
/// value, so the report's percentile lies between the same percentile of the lower
/// bounds and of the upper bounds, give or take the report's own precision
/// (`PRECISION`). The users' own wait (join ack to `admitted` frame) is shown next to
/// it.
fn wait_checks(report: &mut Report, b: &Value, records: &[UserRecord], opens_at_ms: Option<f64>) {
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let seen = sorted(records.iter().filter_map(UserRecord::wait_ms).collect());
    let bounds: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| r.server_wait_bounds_ms(opens_at_ms))
        .collect();
    let lows = sorted(bounds.iter().map(|b| b.0).collect());
    let highs = sorted(bounds.iter().map(|b| b.1).collect());
    for (name, q) in [("p50", 50.0), ("p99", 99.0)] {
        if !seen.is_empty() {
            let users = percentile_sorted(&seen, q) / 1000.0;
            report.figure(
                "server report",
                &format!("users' wait {name} (s)"),
                format!("{users:.3}"),
            );
        }
        let server_ms = b["wait_secs"][name].as_f64().map(|s| s * 1000.0);
        let (passed, detail) = match (server_ms, lows.is_empty()) {
            (Some(s), false) => {
                let (lo, hi) = (percentile_sorted(&lows, q), percentile_sorted(&highs, q));
                let slack = precision_ms(hi);
                (
                    lo - slack <= s && s <= hi + slack,
                    format!(
                        "report {s:.0} ms, users bound it to {lo:.0}..{hi:.0} ms (± {slack:.0})"
                    ),
                )
            }
            (None, true) => (true, "nobody admitted".to_owned()),
            (s, _) => (
                false,
                format!("report {s:?} ms, {} users' bounds", lows.len()),
            ),
        };
        report.check(
            &format!("report wait {name} within the users' bounds"),
            passed,
            detail,
        );
    }
}

/// The report's own precision at a wait of `ms`: rounding to 0.1 s, and its
/// histogram's resolution.
fn precision_ms(ms: f64) -> f64 {
    ROUNDING_MS + ms * BUCKET_SHARE
}

fn figures(report: &mut Report, b: &Value) {
    let show = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        v => v.to_string(),
    };
    for (name, v) in [
        ("joins", &b["joins"]),
        ("peak waiting", &b["peak_waiting"]),
        ("admitted", &b["admitted"]),
        ("orders", &b["orders"]),
        ("abandoned", &b["abandoned"]),
        ("wait p50 (s)", &b["wait_secs"]["p50"]),
        ("wait p99 (s)", &b["wait_secs"]["p99"]),
        ("wait max (s)", &b["wait_secs"]["max"]),
        ("sold out after (s)", &b["sold_out_after_secs"]),
    ] {
        report.figure("server report", name, show(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(prequeued: bool, times: [f64; 4]) -> UserRecord {
        let [connect, joined, opened, issued] = times;
        UserRecord {
            connect_ms: connect,
            joined_ms: Some(joined),
            prequeued,
            opened_ms: prequeued.then_some(opened),
            issued_at_ms: Some(issued),
            admitted_ms: Some(issued + 3.0),
            ..UserRecord::default()
        }
    }

    #[test]
    fn a_users_bounds_run_from_its_ack_to_its_first_connect_or_the_opening() {
        let later = user(false, [1_000.0, 1_040.0, 0.0, 2_000.0]);
        assert_eq!(later.server_wait_bounds_ms(None), Some((960.0, 1_000.0)));
        assert_eq!(later.wait_ms(), Some(963.0));
        let pre = user(true, [100.0, 150.0, 1_020.0, 2_000.0]);
        assert_eq!(
            pre.server_wait_bounds_ms(Some(1_000.0)),
            Some((980.0, 1_000.0))
        );
        assert_eq!(pre.server_wait_bounds_ms(None), Some((980.0, 1_900.0)));
        assert_eq!(precision_ms(6_400.0), 150.0);
    }

    #[test]
    fn a_report_outside_the_bounds_fails_the_check() {
        let users: Vec<UserRecord> = (0..10)
            .map(|i| {
                user(
                    false,
                    [0.0 + f64::from(i), 10.0 + f64::from(i), 0.0, 1_000.0],
                )
            })
            .collect();
        let good = serde_json::json!({"wait_secs": {"p50": 1.0, "p99": 1.0}});
        let bad = serde_json::json!({"wait_secs": {"p50": 1.3, "p99": 1.0}});
        let mut r = Report::new("t", Value::Null);
        wait_checks(&mut r, &good, &users, None);
        assert!(r.passed());
        wait_checks(&mut r, &bad, &users, None);
        assert!(!r.passed());
    }
}
