//! `simulate reconnect-storm`: once everyone waits, a share of the users
//! drop their sockets and resume with `ticket`; places must hold.

use serde::Serialize;
use serde_json::json;

use super::common::Target;
use super::sale::{self, Twist};
use super::sale_report;
use crate::cli::StormArgs;
use crate::report::Report;
use crate::user::record::{Resume, UserRecord};

/// How the resumes went.
#[derive(Debug, Default, Serialize)]
pub struct ResumeStats {
    pub resumes: usize,
    pub queued_same_ticket: usize,
    pub ticket_changed: usize,
    /// First frame after resuming was `admitted` or `sold_out` (the place
    /// was known: its turn came, or the sale ended meanwhile).
    pub admitted_or_sold_out: usize,
    /// First frame was something else (an error, ...).
    pub other_first_frame: usize,
    /// Never heard back after reconnecting.
    pub no_frame: usize,
    pub position_went_up: usize,
    pub mean_position_before: f64,
}

impl ResumeStats {
    pub fn of(records: &[UserRecord], cause: &str) -> Self {
        Self::of_matching(records, |r| r.cause == cause)
    }

    /// Over the resumes `keep` selects.
    pub fn of_matching(records: &[UserRecord], keep: impl Fn(&Resume) -> bool) -> Self {
        let mut s = Self::default();
        let mut sum_before = 0.0;
        for r in records
            .iter()
            .flat_map(|r| r.resumes.iter())
            .filter(|r| keep(r))
        {
            s.resumes += 1;
            sum_before += r.position_before.unwrap_or(0) as f64;
            match r.first_frame.as_str() {
                "queued" => {}
                "admitted" | "sold_out" => {
                    s.admitted_or_sold_out += 1;
                    continue;
                }
                "none" => {
                    s.no_frame += 1;
                    continue;
                }
                _ => {
                    s.other_first_frame += 1;
                    continue;
                }
            }
            if r.ticket_after.is_some() && r.ticket_after == r.ticket_before {
                s.queued_same_ticket += 1;
            } else {
                s.ticket_changed += 1;
            }
            if let (Some(b), Some(a)) = (r.position_before, r.position_after) {
                if a > b {
                    s.position_went_up += 1;
                }
            }
        }
        if s.resumes > 0 {
            s.mean_position_before = sum_before / s.resumes as f64;
        }
        s
    }

    /// Every resume found its place (queued with the same ticket, or already
    /// admitted / sold out).
    pub fn all_kept(&self) -> bool {
        self.ticket_changed == 0 && self.other_first_frame == 0 && self.no_frame == 0
    }

    pub fn describe(&self) -> String {
        format!(
            "{} of {} queued with the same ticket, {} admitted/sold_out, {} ticket changed, {} other first frame, {} no answer",
            self.queued_same_ticket,
            self.resumes,
            self.admitted_or_sold_out,
            self.ticket_changed,
            self.other_first_frame,
            self.no_frame
        )
    }
}

pub async fn run(args: StormArgs) -> Result<bool, String> {
    let common_args = &args.common;
    let mut report = Report::new(
        "reconnect-storm",
        sale_report::params(common_args, json!({ "storm_every": args.storm_every })),
    );
    let mut target = Target::open(&common_args.server, Vec::new()).await?;
    let twist = Twist::Storm {
        every: args.storm_every.max(1),
    };
    let (run, m) = sale_report::run_reported(
        &mut target,
        common_args,
        "reconnect-storm",
        &twist,
        &mut report,
    )
    .await?;
    let s = ResumeStats::of(&run.records, "storm");
    report.figure("storm", "users that dropped and resumed", s.resumes);
    report.figure(
        "storm",
        "mean position before the drop",
        format!("{:.1}", s.mean_position_before),
    );
    report.figure(
        "storm",
        "resumed with the same ticket",
        s.queued_same_ticket,
    );
    report.check(
        "storm users resumed with their ticket",
        s.resumes > 0 && s.queued_same_ticket == s.resumes,
        s.describe(),
    );
    report.check(
        "resumed position <= position before the drop",
        s.position_went_up == 0,
        format!("{} went up", s.position_went_up),
    );
    sale::finish_reported(
        target,
        report,
        common_args,
        &run,
        json!({ "metrics": m, "resumes": s }),
    )
    .await
}
