//! The fairness check the scenarios end with: the same checks as
//! `scripts/verify-fairness.py`, written again here (not the server's code) over
//! the public `fairness` and `fairness/log` endpoints, and the script itself.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::http::HttpClient;
use crate::report::Report;

/// Checks one activity's published seed and line; `Ok` is the verdict of a fair
/// line, `Err` the first thing that is not.
pub fn check(fairness: &Value, log: &str) -> Result<String, String> {
    let seed = match (fairness["commitment"].as_str(), fairness["seed"].as_str()) {
        (Some(c), Some(s)) => {
            let seed = decode_hex(s)
                .filter(|b| b.len() == 32)
                .ok_or("the seed is not 32 bytes of hex")?;
            if hex(&Sha256::digest(&seed)) != c.to_ascii_lowercase() {
                return Err("the seed does not match the commitment".into());
            }
            Some(seed)
        }
        (Some(_), None) => return Err("the seed is not revealed (not opened yet)".into()),
        (None, _) => None,
    };
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the log is not NDJSON: {e}"))?;
    let mut seen = std::collections::HashSet::new();
    for (i, l) in lines.iter().enumerate() {
        let r = l["receipt"]
            .as_str()
            .ok_or(format!("line {}: no receipt", i + 1))?;
        if !seen.insert(r) {
            return Err(format!("line {}: receipt {r} appears twice", i + 1));
        }
    }
    let pre = lines.iter().take_while(|l| l["prequeue"] == true).count();
    if let Some(i) = lines[pre..].iter().position(|l| l["prequeue"] == true) {
        return Err(format!(
            "line {}: a pre-queue place after a later joiner",
            pre + i + 1
        ));
    }
    // Later joiners follow in join order. RFC 3339 UTC with fixed millisecond digits:
    // text order is time order. A line without `joined_at` (an older server) is
    // not checked.
    let mut last_join: Option<&str> = None;
    for (i, l) in lines.iter().enumerate().skip(pre) {
        let Some(at) = l["joined_at"].as_str() else {
            continue;
        };
        if last_join.is_some_and(|p| at < p) {
            return Err(format!(
                "line {}: joined_at goes back in time (not in join order)",
                i + 1
            ));
        }
        last_join = Some(at);
    }
    match &seed {
        Some(seed) => {
            let ranks: Vec<[u8; 32]> = lines[..pre]
                .iter()
                .map(|l| {
                    let mut mac = <Hmac<Sha256>>::new_from_slice(seed).expect("any key length");
                    mac.update(l["receipt"].as_str().unwrap_or_default().as_bytes());
                    mac.finalize().into_bytes().into()
                })
                .collect();
            if let Some(i) = ranks.windows(2).position(|w| w[0] >= w[1]) {
                return Err(format!(
                    "line {}: the pre-queue is not in HMAC order",
                    i + 2
                ));
            }
        }
        None if pre > 0 => return Err("a pre-queue without a commitment".into()),
        None => {}
    }
    let mut last: Option<String> = None;
    let mut waiting_above = None;
    for (i, l) in lines.iter().enumerate() {
        if l["outcome"] == "waiting" && waiting_above.is_none() {
            waiting_above = Some(i + 1);
        }
        let Some(at) = l["admitted_at"].as_str() else {
            continue;
        };
        if let Some(w) = waiting_above {
            return Err(format!(
                "line {}: admitted while line {w} ahead was waiting",
                i + 1
            ));
        }
        // RFC 3339 UTC at second precision: text order is time order.
        if last.as_deref().is_some_and(|p| at < p) {
            return Err(format!("line {}: admitted_at goes back in time", i + 1));
        }
        last = Some(at.to_owned());
    }
    let admitted = lines
        .iter()
        .filter(|l| l["admitted_at"].is_string())
        .count();
    Ok(format!(
        "{} places ({pre} pre-queued, {admitted} admitted): {}later joiners in join order, admissions in line order",
        lines.len(),
        if seed.is_some() {
            "seed matches commitment, pre-queue in HMAC order, "
        } else {
            "no pre-queue, "
        }
    ))
}

/// Downloads the activity's fairness data, checks it and records the verdict as a
/// check of the report (and its line as a figure); then runs the published verifier,
/// `scripts/verify-fairness.py`, against the server at `url` the same way.
pub async fn verify_into(report: &mut Report, http: &HttpClient, url: &str, id: &str) {
    check_into(report, http, id).await;
    script_into(report, url, id).await;
}

/// The verdict of `scripts/verify-fairness.py URL ID` (Python standard library only),
/// as a check: it exits 0 only on `PASS`.
async fn script_into(report: &mut Report, url: &str, id: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify-fairness.py");
    let out = tokio::process::Command::new("python3")
        .args([script, url, id])
        .output()
        .await;
    let (passed, line) = match out {
        Ok(o) => {
            let mut line = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if line.is_empty() {
                line = String::from_utf8_lossy(&o.stderr).trim().to_owned();
            }
            (o.status.success(), line)
        }
        Err(e) => (false, format!("python3 {script}: {e}")),
    };
    report.figure("fairness", "scripts/verify-fairness.py", &line);
    report.check("scripts/verify-fairness.py passes", passed, line);
}

async fn check_into(report: &mut Report, http: &HttpClient, id: &str) {
    let verdict = async {
        let f = http
            .get(&format!("/api/activities/{id}/fairness"), None)
            .await
            .map_err(|e| format!("GET fairness: {e}"))?;
        let fairness = f.json().ok_or("fairness is not JSON")?;
        let l = http
            .get(&format!("/api/activities/{id}/fairness/log"), None)
            .await
            .map_err(|e| format!("GET fairness/log: {e}"))?;
        check(&fairness, &String::from_utf8_lossy(&l.body))
    }
    .await;
    let (passed, line) = match verdict {
        Ok(m) => (true, format!("PASS: {m}")),
        Err(m) => (false, format!("FAIL: {m}")),
    };
    report.figure("fairness", "verifier", &line);
    report.check(
        "fairness verifier passes on the published line",
        passed,
        line,
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(receipt: &str, pre: bool, at: Option<&str>) -> String {
        joined(receipt, pre, at, "2026-12-01T09:59:00.000Z")
    }

    fn joined(receipt: &str, pre: bool, at: Option<&str>, joined_at: &str) -> String {
        let outcome = if at.is_some() { "admitted" } else { "left" };
        json!({"receipt": receipt, "prequeue": pre, "outcome": outcome, "admitted_at": at,
               "joined_at": joined_at})
        .to_string()
    }

    #[test]
    fn a_line_in_hmac_order_passes_and_a_swapped_one_fails() {
        let seed = [5u8; 32];
        let fairness = json!({"commitment": hex(&Sha256::digest(seed)), "seed": hex(&seed)});
        let mut receipts: Vec<String> = (0..6).map(|i| format!("r{i}")).collect();
        let rank = |r: &String| {
            let mut mac = <Hmac<Sha256>>::new_from_slice(&seed).expect("key");
            mac.update(r.as_bytes());
            mac.finalize().into_bytes().to_vec()
        };
        receipts.sort_by_key(rank);
        let mut lines: Vec<String> = receipts
            .iter()
            .map(|r| line(r, true, Some("2026-12-01T10:00:00Z")))
            .collect();
        lines.push(line("late", false, Some("2026-12-01T10:00:01Z")));
        let log = lines.join("\n");
        assert!(
            check(&fairness, &log).is_ok(),
            "{:?}",
            check(&fairness, &log)
        );
        lines.swap(0, 1);
        assert!(check(&fairness, &lines.join("\n")).is_err());
        let wrong = json!({"commitment": hex(&Sha256::digest(seed)), "seed": hex(&[6u8; 32])});
        assert!(check(&wrong, &log).is_err());
    }

    #[test]
    fn later_joiners_out_of_join_order_fail() {
        let fairness = json!({"commitment": null, "seed": null});
        let mut lines = [
            joined("a", false, None, "2026-12-01T10:00:00.100Z"),
            joined("b", false, None, "2026-12-01T10:00:00.100Z"),
            joined("c", false, None, "2026-12-01T10:00:00.250Z"),
        ];
        assert!(check(&fairness, &lines.join("\n")).is_ok());
        lines.swap(1, 2);
        let verdict = check(&fairness, &lines.join("\n"));
        assert!(
            verdict.as_ref().is_err_and(|e| e.contains("joined_at")),
            "{verdict:?}"
        );
        // Lines from an older server, without joined_at, are not checked.
        let old: Vec<String> = ["x", "y"]
            .iter()
            .map(|r| json!({"receipt": r, "prequeue": false, "outcome": "left"}).to_string())
            .collect();
        assert!(check(&fairness, &old.join("\n")).is_ok());
    }
}
