//! `simulate hospital`: an appointment activity whose patients all join
//! before opening (pre-queue shuffle), pick slots, and sometimes never pay.

use std::time::Duration;

use serde_json::{json, Value};

use super::common::{self, Target};
use crate::admin::ActivityView;
use crate::cli::HospitalArgs;
use crate::crowd::{Crowd, CrowdSpec};
use crate::metrics::{invariant_violations, CrowdMetrics};
use crate::plan::Behaviour;
use crate::report::{f1, Report};
use crate::sampler::Sampler;
use crate::stats::{chi_square_independence, ChiSquare};
use crate::user::record::UserRecord;

fn activity_spec(id: &str, a: &HospitalArgs, opens_at: &str) -> Value {
    let mut slots = Vec::new();
    for d in 1..=a.doctors {
        for k in 0..a.slots_per_doctor {
            let start = 9 * 60 + 30 * k;
            let end = start + 30;
            let hhmm = |m: usize| format!("{:02}{:02}", m / 60, m % 60);
            let label = format!(
                "Dr {d}, {:02}:{:02}-{:02}:{:02}",
                start / 60,
                start % 60,
                end / 60,
                end % 60
            );
            slots.push(json!({ "id": format!("d{d}-{}", hhmm(start)), "label": label, "capacity": a.capacity }));
        }
    }
    json!({
        "id": id,
        "name": format!("Simulated clinic {id}"),
        "kind": "appointment",
        "slots": slots,
        "per_user_limit": 1,
        "opens_at": opens_at,
        "admission": {
            "rate_per_sec": a.rate,
            "max_active": a.max_active,
            "token_ttl_secs": a.token_ttl,
            "wait_for_returns": true,
        },
        "payment_timeout_secs": a.payment_timeout,
    })
}

pub async fn run(a: HospitalArgs) -> Result<bool, String> {
    let params = json!({
        "patients": a.patients, "doctors": a.doctors, "slots_per_doctor": a.slots_per_doctor,
        "capacity": a.capacity, "unpaid_fraction": a.unpaid_fraction, "rate_per_sec": a.rate,
        "max_active": a.max_active, "payment_timeout_secs": a.payment_timeout,
    });
    let mut report = Report::new("hospital", params);
    let mut target = Target::open(&a.server, Vec::new()).await?;
    let (deadline, deadline_ms) = common::deadline(&a.run);
    let id = common::activity_id(&a.run, "hospital");
    let opens_in = a.opens_in_secs.unwrap_or(3.0 + a.patients as f64 / 1000.0);
    let opens_at = crate::timefmt::rfc3339_in(opens_in.ceil() + 1.0);
    if let Err(e) = target
        .admin
        .create_activity(&activity_spec(&id, &a, &opens_at))
        .await
    {
        target.shutdown(&mut report).await;
        return Err(format!("create activity: {e}"));
    }
    let baseline = target.sample();
    let sampler = Sampler::start(target.admin.clone(), id.clone(), target.pid.clone());
    let spec = CrowdSpec {
        server_urls: vec![target.url.clone()],
        activity_id: id.clone(),
        jwt_secret: target.jwt_secret.clone(),
        user_prefix: "patient-".into(),
        users: a.patients,
        procs: a.run.procs,
        sources_per_proc: a.run.sources,
        handshakes: a.run.handshakes,
        deadline_unix_ms: deadline_ms,
        behaviour: Behaviour {
            pay: true,
            unpaid_fraction: a.unpaid_fraction,
            appointment: true,
            seed: a.run.seed,
            storm_every: 0,
            pow_bits: 0,
            stall_rcvbuf: None,
        },
    };
    let mut crowd = Crowd::start(&spec).await?;
    if !crowd.wait_for(deadline, |_, c| c.all_joined()).await {
        report
            .run_errors
            .push("not every patient joined before the deadline".into());
    }
    let waiting_at_peak = target.admin.view(&id).await.map_or(0, |v| v.waiting);
    let at_peak = target.sample();
    report.figure("run", "opens_at", &opens_at);
    report.figure(
        "run",
        "joined before opening at",
        crate::timefmt::rfc3339_now(),
    );
    let finished = crowd.finish(deadline + Duration::from_secs(20)).await;
    report.run_errors.extend(finished.errors);
    common::report_lag(&mut report, finished.lag);
    let records = finished.records;
    let final_view =
        common::wait_view(&target.admin, &id, Duration::from_secs(5), |v| v.held == 0).await;
    let end = target.sample();
    let samples = sampler.stop().await;

    let m = CrowdMetrics::of(&records);
    patient_figures(&mut report, &records, &m);
    common::server_figures(
        &mut report,
        baseline,
        at_peak,
        end,
        waiting_at_peak,
        &samples,
    );

    booking_checks(&mut report, &a, final_view.as_ref(), &records);
    let (cancelled, not_cancelled) = unpaid_orders_cancelled(&target, &records).await;
    report.check(
        "unpaid orders cancelled",
        not_cancelled.is_empty(),
        format!(
            "{cancelled} cancelled, {} not: {:?}",
            not_cancelled.len(),
            &not_cancelled[..not_cancelled.len().min(5)]
        ),
    );

    let shuffle = shuffle_test(&records);
    match &shuffle {
        Some(c) => {
            report.figure(
                "pre-queue shuffle",
                "chi-square (join decile x queue decile)",
                format!("{:.2}", c.statistic),
            );
            report.figure(
                "pre-queue shuffle",
                "degrees of freedom",
                c.degrees_of_freedom,
            );
            report.figure("pre-queue shuffle", "p-value", format!("{:.4}", c.p_value));
            report.check(
                "shuffle independent of join order (p > 0.001)",
                c.p_value > 0.001,
                format!(
                    "chi2 {:.2}, df {}, p {:.4}",
                    c.statistic, c.degrees_of_freedom, c.p_value
                ),
            );
        }
        None => report.check(
            "shuffle testable",
            false,
            "no patient got a queue position after opening",
        ),
    }
    report.anomalies = m.anomalies.iter().map(|(k, v)| (k.clone(), *v)).collect();
    report.anomalies.sort_by_key(|x| std::cmp::Reverse(x.1));
    report.data = json!({ "metrics": m, "shuffle": shuffle, "samples": samples });
    crate::fairness::verify_into(&mut report, &target.http, &target.url, &id).await;
    let key = target.admin.key.clone();
    let opens_at_ms = crate::timefmt::unix_ms(&opens_at);
    crate::server_report::compare_into(&mut report, &target.http, &key, &id, &records, opens_at_ms)
        .await;
    target.shutdown(&mut report).await;
    common::finish(
        report,
        &a.run,
        &samples,
        &CrowdMetrics::admission_latencies(&records),
    )
}

/// Join rank (order of `prequeue` receipt) against queue rank after the
/// shuffle (`position` of the first `queued`), in deciles.
fn shuffle_test(records: &[UserRecord]) -> Option<ChiSquare> {
    let mut both: Vec<(f64, u64)> = records
        .iter()
        .filter_map(|r| Some((r.joined_ms?, r.opening_position?)))
        .collect();
    let n = both.len();
    if n < 100 {
        return None;
    }
    both.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut by_queue: Vec<(usize, u64)> = both
        .iter()
        .enumerate()
        .map(|(join_rank, (_, pos))| (join_rank, *pos))
        .collect();
    by_queue.sort_by_key(|x| x.1);
    let mut table = vec![vec![0u64; 10]; 10];
    for (queue_rank, (join_rank, _)) in by_queue.iter().enumerate() {
        table[join_rank * 10 / n][queue_rank * 10 / n] += 1;
    }
    chi_square_independence(&table)
}

/// GET each unpaid order with its owner's identity: it must be `cancelled`.
async fn unpaid_orders_cancelled(target: &Target, records: &[UserRecord]) -> (usize, Vec<String>) {
    let mut cancelled = 0;
    let mut not = Vec::new();
    for r in records {
        let Some(o) = r.order.as_ref().filter(|o| o.left_unpaid) else {
            continue;
        };
        let jwt = crate::jwt::mint(
            &target.jwt_secret,
            &r.user,
            (crate::client::now_ms() / 1000.0) as u64 + 3600,
        );
        let status = match target
            .http
            .get(&format!("/api/orders/{}", o.id), Some(&jwt))
            .await
        {
            Ok(resp) if resp.status == 200 => resp
                .json()
                .and_then(|v| v.get("order")?.get("status")?.as_str().map(str::to_string))
                .unwrap_or_else(|| "unreadable".into()),
            Ok(resp) => format!("http {}", resp.status),
            Err(e) => format!("error {e}"),
        };
        if status == "cancelled" {
            cancelled += 1;
        } else {
            not.push(format!("{}: {status}", o.id));
        }
    }
    (cancelled, not)
}

/// What the patients saw, as figures; cadence and monotony as checks.
fn patient_figures(report: &mut Report, records: &[UserRecord], m: &CrowdMetrics) {
    report.figure(
        "patients",
        "patients / joined",
        format!("{} / {}", m.users, m.joined),
    );
    report.figure(
        "patients",
        "got prequeue",
        records.iter().filter(|r| r.prequeued).count(),
    );
    report.figure("patients", "admitted", m.admitted);
    report.figure(
        "patients",
        "orders / paid / left unpaid",
        format!(
            "{} / {} / {}",
            m.orders, m.orders_paid, m.orders_left_unpaid
        ),
    );
    report.figure(
        "patients",
        "purchase 409 sold_out (slot full, retried)",
        m.purchase_sold_out_409,
    );
    report.figure(
        "patients",
        "waiting_for_returns frames",
        records
            .iter()
            .map(|r| u64::from(r.waiting_for_returns_frames))
            .sum::<u64>(),
    );
    report.figure("patients", "outcomes", format!("{:?}", m.outcomes));
    report.figure(
        "patients",
        "gap between frames while waiting (mean/max)",
        format!(
            "{} ms / {} ms",
            f1(m.position_gap_mean_ms),
            f1(m.position_gap_max_ms)
        ),
    );
    report.check(
        "a waiting patient hears at least every 5 s (+1 s slack)",
        m.position_gap_max_ms <= super::sale::POSITION_GAP_LIMIT_MS,
        format!("max gap {} ms", f1(m.position_gap_max_ms)),
    );
    report.check(
        "positions never increase",
        m.position_increases == 0,
        format!("{} increases", m.position_increases),
    );
    let al = &m.admission_latency_ms;
    report.figure(
        "patients",
        "admission -> client ms p50/p99/max",
        format!("{} / {} / {}", f1(al.p50), f1(al.p99), f1(al.max)),
    );
}

/// Pre-queue, per-slot invariant and re-sale checks on the final view.
fn booking_checks(
    report: &mut Report,
    a: &HospitalArgs,
    final_view: Option<&ActivityView>,
    records: &[UserRecord],
) {
    report.check(
        "every patient pre-queued",
        records.iter().all(|r| r.prequeued),
        format!(
            "{} of {}",
            records.iter().filter(|r| r.prequeued).count(),
            records.len()
        ),
    );
    let capacity: i64 = (a.doctors * a.slots_per_doctor) as i64 * a.capacity as i64;
    match final_view {
        Some(v) => {
            report.figure(
                "final view",
                "capacity / available / held / sold / paid / cancelled",
                format!(
                    "{} / {} / {} / {} / {} / {}",
                    v.capacity, v.available, v.held, v.sold, v.paid, v.cancelled
                ),
            );
            let bad = invariant_violations(v);
            report.check(
                "no slot overbooked, invariant per slot",
                bad.is_empty() && v.slots.len() == a.doctors * a.slots_per_doctor,
                format!("{} slots; {}", v.slots.len(), bad.join("; ")),
            );
            if a.patients as i64 >= capacity * 2 {
                report.check(
                    "every slot re-sold and paid in the end",
                    v.paid == capacity && v.sold == capacity,
                    format!("paid {} sold {} of {capacity}", v.paid, v.sold),
                );
            }
        }
        None => report.check("final admin view readable", false, "GET failed"),
    }
}
