//! Figures and checks of the stalled-clients scenario.

use serde_json::{json, Value};

use super::measure::{self, RssWindow};
use super::Stall;
use crate::cli::StalledArgs;
use crate::metrics::CrowdMetrics;
use crate::report::{f1, Report};
use crate::scenarios::common;
use crate::scenarios::sale::SaleRun;
use crate::scenarios::sale_report;
use crate::user::record::{Outcome, UserRecord};
use crate::user::stalled::NOT_READ_CODE;

/// Reports everything; returns the JSON data of the run.
pub fn report(report: &mut Report, args: &StalledArgs, run: &SaleRun, stall: &Stall) -> Value {
    let sale = args.sale();
    let m = CrowdMetrics::of(&run.records);
    sale_report::sale_figures(report, run, &sale, &m);
    common::server_figures(
        report,
        run.baseline,
        run.at_peak,
        run.end,
        run.waiting_at_peak,
        &run.samples,
    );
    let owed = owed_frames(report, args, stall);
    memory(report, args, run, stall, owed);
    let ends = sockets(report, stall);
    normal_frames(report, &run.records);
    sale_checks(report, run, &m);
    report.anomalies = m.anomalies.iter().map(|(k, v)| (k.clone(), *v)).collect();
    report.anomalies.sort_by_key(|x| std::cmp::Reverse(x.1));
    json!({ "metrics": m, "stalled_socket_ends": ends, "frames_owed": owed,
            "stall_start_t": stall.start_t, "stall_end_t": stall.end_t, "toggles": stall.toggles })
}

fn owed_frames(report: &mut Report, args: &StalledArgs, stall: &Stall) -> measure::FramesOwed {
    let admitted =
        |v: &Option<crate::admin::ActivityView>| v.as_ref().map_or(0, |v| v.admitted_total);
    let admissions = (admitted(&stall.view_end) - admitted(&stall.view_start)).max(0) as u64;
    let s = "stall period";
    report.figure(
        s,
        "length",
        format!("{} s", f1(stall.end_t - stall.start_t)),
    );
    report.figure(s, "admissions during it", admissions);
    report.figure(s, "pause/resume pairs", stall.toggles);
    if !stall.toggle_errors.is_empty() {
        report.figure(
            s,
            "pause/resume errors (first)",
            stall.toggle_errors.join("; "),
        );
    }
    let owed = measure::frames_owed(args.stalled as u64, admissions, stall.toggles);
    report.figure(
        s,
        "frames owed to the stalled (estimate)",
        format!(
            "{} positions (1% rule) + {} admitted + {} paused/resumed = {}",
            owed.positions,
            owed.admitted,
            owed.notices,
            owed.total()
        ),
    );
    if args.stalled > 0 {
        report.figure(
            s,
            "frames owed per stalled user (estimate)",
            f1(owed.total() as f64 / args.stalled as f64),
        );
    }
    owed
}

fn memory(
    report: &mut Report,
    args: &StalledArgs,
    run: &SaleRun,
    stall: &Stall,
    owed: measure::FramesOwed,
) {
    let s = "stall memory";
    let (Some(start), Some(end)) = (run.at_peak, stall.at_end) else {
        report.figure(s, "server RSS", "not sampled (use --spawn-server)");
        return;
    };
    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    report.figure(
        s,
        "RSS when all users joined (stall start)",
        mib(start.rss_kib),
    );
    report.figure(s, "RSS at end of the stall period", mib(end.rss_kib));
    let window = RssWindow::of(&run.samples, stall.start_t, stall.end_t);
    let peak = window.map_or(end.rss_kib, |w| w.max_kib).max(end.rss_kib);
    report.figure(s, "max RSS during the stall period", mib(peak));
    let growth = end.rss_kib as i64 - start.rss_kib as i64;
    report.figure(
        s,
        "RSS growth over the stall (end - start)",
        format!("{} MiB", f1(growth as f64 / 1024.0)),
    );
    let per_end = measure::per_session_kib(start.rss_kib, end.rss_kib, args.stalled);
    let per_peak = measure::per_session_kib(start.rss_kib, peak, args.stalled);
    report.figure(
        s,
        "growth per stalled session (end / peak)",
        format!("{} KiB / {} KiB", f1(per_end), f1(per_peak)),
    );
    let owed_per = owed.total() as f64 / args.stalled.max(1) as f64;
    report.check(
        "RSS growth per stalled session <= bound",
        per_peak <= args.max_growth_kib,
        format!(
            "peak growth {} KiB, end growth {} KiB per stalled session (bound {} KiB) while ~{} frames per stalled user were due",
            f1(per_peak),
            f1(per_end),
            args.max_growth_kib,
            f1(owed_per)
        ),
    );
}

fn sockets(report: &mut Report, stall: &Stall) -> std::collections::BTreeMap<String, usize> {
    let s = "stalled sockets";
    let recs = &stall.stalled;
    let joined = recs.iter().filter(|r| r.joined_ms.is_some()).count();
    report.figure(
        s,
        "stalled users joined (then stopped reading)",
        format!("{joined} of {}", recs.len()),
    );
    let sum = |f: fn(&crate::user::record::StallRecord) -> u32| -> u64 {
        recs.iter()
            .filter_map(|r| r.stall.as_ref())
            .map(|x| u64::from(f(x)))
            .sum()
    };
    report.figure(
        s,
        "frames read when reading again: position / paused+resumed / other",
        format!(
            "{} / {} / {}",
            sum(|x| x.drained_positions),
            sum(|x| x.drained_notices),
            sum(|x| x.drained_other)
        ),
    );
    let ends = measure::socket_ends(recs);
    for (end, n) in &ends {
        report.figure(s, &format!("ended: {end}"), n);
    }
    let closed = measure::closed_by_server(&ends);
    let not_read = recs
        .iter()
        .filter(|r| r.stall.as_ref().and_then(|x| x.close_code) == Some(NOT_READ_CODE))
        .count();
    report.figure(
        s,
        "closed or dropped by the server",
        format!("{closed} of {joined}"),
    );
    report.figure(s, "closed with 1008", not_read);
    report.check(
        "every stalled user joined and stalled",
        joined == recs.len() && !recs.is_empty(),
        format!("{joined} of {}", recs.len()),
    );
    ends
}

fn normal_frames(report: &mut Report, records: &[UserRecord]) {
    let n = records.len().max(1) as f64;
    let positions: u64 = records.iter().map(|r| u64::from(r.position_frames)).sum();
    let notices: u64 = records
        .iter()
        .map(|r| u64::from(r.paused_frames + r.resumed_frames))
        .sum();
    report.figure(
        "normal users",
        "frames read per user: position / paused+resumed (mean)",
        format!("{} / {}", f1(positions as f64 / n), f1(notices as f64 / n)),
    );
}

fn sale_checks(report: &mut Report, run: &SaleRun, m: &CrowdMetrics) {
    sale_report::joined_check(report, m);
    let f = &m.fifo;
    report.check(
        "FIFO among normal users",
        f.holds(),
        format!(
            "admitted {}, outside lowest {}, inversions {}, missing seq {}, duplicate seq {}",
            f.admitted,
            f.admitted_outside_lowest,
            f.order_inversions,
            f.missing_seq,
            f.duplicate_seqs
        ),
    );
    report.check(
        "positions never increase",
        m.position_increases == 0,
        format!("{} increases", m.position_increases),
    );
    let no_outcome = run
        .records
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::Running | Outcome::Timeout | Outcome::ConnectFailed
            )
        })
        .count();
    report.check(
        "every normal user got an outcome",
        no_outcome == 0,
        format!(
            "{no_outcome} running/timed out/never connected; {:?}",
            m.outcomes
        ),
    );
    crate::scenarios::sale_report::final_view_checks(
        report,
        run.final_view.as_ref(),
        m.orders,
        None,
    );
}
