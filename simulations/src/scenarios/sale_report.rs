//! What every sale scenario reports: parameters, figures and checks.

use serde_json::{json, Value};

use super::common;
use super::common::Target;
use super::sale::{self, SaleRun, Twist, POSITION_GAP_LIMIT_MS};
use crate::cli::{FlashSaleArgs, SaleArgs};
use crate::metrics::{invariant_violations, CrowdMetrics};
use crate::report::{f1, Report};

/// Runs the sale and reports the figures every sale scenario shares; on failure
/// the target is shut down first. Returns the run and its crowd metrics.
pub async fn run_reported(
    target: &mut Target,
    args: &FlashSaleArgs,
    scenario: &str,
    twist: &Twist,
    report: &mut Report,
) -> Result<(SaleRun, crate::metrics::CrowdMetrics), String> {
    match sale::run(target, args, scenario, twist, report).await {
        Ok(run) => {
            let m = crate::metrics::CrowdMetrics::of(&run.records);
            report_sale(report, &run, &args.sale, &m);
            Ok((run, m))
        }
        Err(e) => {
            target.shutdown(report).await;
            Err(e)
        }
    }
}

pub fn params(args: &FlashSaleArgs, extra: Value) -> Value {
    let s = &args.sale;
    let mut p = json!({
        "users": s.users, "stock": s.stock, "rate_per_sec": s.rate, "max_active": s.max_active,
        "token_ttl_secs": s.token_ttl, "admit_during_joins": s.admit_during_joins, "pay": !s.no_pay,
        "hold_secs": s.hold_secs,
        "procs": args.run.procs, "max_secs": args.run.max_secs, "handshakes": args.run.handshakes,
        "spawned_server": args.server.spawn_server.is_some(),
        "per_ip_limits_lifted": args.server.spawn_server.is_some() && !args.server.keep_rate_limits,
        "sources_per_proc": args.run.sources,
    });
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    p
}

/// The figures and checks every sale scenario prints.
pub fn report_sale(report: &mut Report, run: &SaleRun, sale: &SaleArgs, m: &CrowdMetrics) {
    sale_figures(report, run, sale, m);
    common::server_figures(
        report,
        run.baseline,
        run.at_peak,
        run.end,
        run.waiting_at_peak,
        &run.samples,
    );
    joined_check(report, m);
    let f = &m.fifo;
    report.check(
        "FIFO: admitted = lowest seq, in seq order",
        f.holds(),
        format!(
            "admitted {}, outside lowest {}, inversions {}, missing seq {}, duplicate seq {}, missing issued_at_ms {}",
            f.admitted, f.admitted_outside_lowest, f.order_inversions, f.missing_seq, f.duplicate_seqs, f.missing_issued_at
        ),
    );
    report.check(
        "a waiting user hears at least every 5 s (+1 s slack)",
        m.position_gap_max_ms <= POSITION_GAP_LIMIT_MS,
        format!("max gap {} ms", f1(m.position_gap_max_ms)),
    );
    outcome_checks(report, run, sale, m);
}

/// What the crowd saw (joins, admissions, sale, final view), without the
/// server process figures.
pub fn sale_figures(report: &mut Report, run: &SaleRun, sale: &SaleArgs, m: &CrowdMetrics) {
    report.figure("run", "activity", &run.activity_id);
    report.figure("run", "load-generator processes", run.processes);
    for (t, what) in &run.timeline {
        report.figure("timeline", &format!("t = {t:.2} s"), what);
    }
    report.figure("joins", "users", m.users);
    report.figure("joins", "joined (got queued)", m.joined);
    report.figure(
        "joins",
        "join rate (joined / window)",
        format!(
            "{} /s over {} s",
            f1(m.join_rate_per_sec),
            f1(m.join_window_secs)
        ),
    );
    common::report_lag(report, run.load_lag);
    if let Some(n) = run.listen_overflows {
        report.figure(
            "joins",
            "kernel ListenOverflows during joins (SYNs dropped)",
            n,
        );
    }
    let j = &m.join_latency_ms;
    report.figure(
        "joins",
        "connect -> queued ms p50/p95/p99/max",
        format!(
            "{} / {} / {} / {}",
            f1(j.p50),
            f1(j.p95),
            f1(j.p99),
            f1(j.max)
        ),
    );
    report.figure(
        "joins",
        "connect errors / unexpected closes",
        format!("{} / {}", m.connect_errors, m.unexpected_closes),
    );
    let a = &m.admission_latency_ms;
    report.figure("admission", "admitted", m.admitted);
    report.figure(
        "admission",
        "admission -> client ms p50/p95/p99/max",
        format!(
            "{} / {} / {} / {}",
            f1(a.p50),
            f1(a.p95),
            f1(a.p99),
            f1(a.max)
        ),
    );
    report.figure("admission", "position frames", m.position_frames);
    report.figure(
        "admission",
        "gap between frames while waiting (mean/max)",
        format!(
            "{} ms / {} ms",
            f1(m.position_gap_mean_ms),
            f1(m.position_gap_max_ms)
        ),
    );
    report.figure(
        "admission",
        "positions repeated by the socket's node (activity refresh late); longest gap between the activity's own frames",
        format!(
            "{} / {} ms",
            m.position_repeats,
            f1(m.news_gap_max_ms)
        ),
    );
    report.figure(
        "sale",
        "orders created / stock",
        format!("{} / {}", m.orders, sale.stock),
    );
    report.figure("sale", "orders paid", m.orders_paid);
    report.figure("sale", "sold_out frames", m.sold_out_frames);
    report.figure("sale", "purchase 409 sold_out", m.purchase_sold_out_409);
    report.figure("sale", "outcomes", format!("{:?}", m.outcomes));
    if let Some(v) = &run.final_view {
        report.figure("final view", "phase", &v.phase);
        report.figure(
            "final view",
            "capacity / available / held / sold",
            format!("{} / {} / {} / {}", v.capacity, v.available, v.held, v.sold),
        );
        report.figure(
            "final view",
            "paid / cancelled / waiting / admitted_total",
            format!(
                "{} / {} / {} / {}",
                v.paid, v.cancelled, v.waiting, v.admitted_total
            ),
        );
    }
}

/// Every user got a place (or arrived after the end).
pub fn joined_check(report: &mut Report, m: &CrowdMetrics) {
    report.check(
        "every user joined (or came after the sale ended)",
        m.joined + m.sold_out_before_join == m.users,
        format!(
            "{} queued + {} told sold_out on arrival, of {}",
            m.joined, m.sold_out_before_join, m.users
        ),
    );
}

/// The final view against what the users saw: the invariant, `sold` against the
/// acknowledged orders, and (when they paid) `paid` against the paid orders.
pub fn final_view_checks(
    report: &mut Report,
    view: Option<&crate::admin::ActivityView>,
    orders: usize,
    paid: Option<usize>,
) {
    let Some(v) = view else {
        return report.check(
            "final admin view readable",
            false,
            "GET /api/admin/activities/{id} failed",
        );
    };
    let bad = invariant_violations(v);
    report.check(
        "capacity == available + held + sold",
        bad.is_empty(),
        bad.join("; "),
    );
    report.check(
        "sold == orders acknowledged",
        v.sold == orders as i64,
        format!("sold {} vs {orders} orders", v.sold),
    );
    if let Some(paid) = paid {
        report.check(
            "paid == orders paid",
            v.paid == paid as i64,
            format!("paid {} vs {paid}", v.paid),
        );
    }
}

/// Positions, admission rate, orders, the final view's invariant; and the
/// anomalies. (FIFO and cadence are checked by the caller: a failover changes
/// what the contract allows there.)
pub fn outcome_checks(report: &mut Report, run: &SaleRun, sale: &SaleArgs, m: &CrowdMetrics) {
    report.check(
        "positions never increase",
        m.position_increases == 0,
        format!("{} increases", m.position_increases),
    );
    if let Some((n, w)) = crate::sampler::peak_admissions_per_window(&run.samples) {
        report.figure(
            "admission",
            "peak admissions in a >= 1 s window (sampled)",
            format!(
                "{n} in {w:.2} s ({} /s; rate_per_sec {})",
                f1(n as f64 / w),
                sale.rate
            ),
        );
    }
    // Exact, from the server's own admission times (`issued_at_ms`): the sampled
    // counter above can bunch admissions it saw late (e.g. across a failover).
    report.check(
        "admission rate <= rate_per_sec",
        m.peak_admissions_1s as u64 <= sale.rate,
        format!(
            "at most {} admissions in any second of server time (issued_at_ms), rate_per_sec {}",
            m.peak_admissions_1s, sale.rate
        ),
    );
    let expect_orders = (sale.stock as usize).min(m.users);
    report.check(
        "orders == min(stock, users)",
        m.orders == expect_orders,
        format!("{} orders, expected {expect_orders}", m.orders),
    );
    let paid = (!sale.no_pay).then_some(m.orders_paid);
    final_view_checks(report, run.final_view.as_ref(), m.orders, paid);
    report.anomalies = m.anomalies.iter().map(|(k, v)| (k.clone(), *v)).collect();
    report.anomalies.sort_by_key(|x| std::cmp::Reverse(x.1));
}
