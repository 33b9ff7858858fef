//! Per-node figures: sessions joined through each node, its join rate, RSS
//! per waiting session, CPU, and the admissions delivered through it.

use serde::Serialize;

use super::node_sampler::NodeSample;
use crate::server::ProcSample;
use crate::stats::Summary;
use crate::user::record::UserRecord;

/// RSS/CPU of every node at the run's landmarks.
#[derive(Debug, Clone, Default)]
pub struct NodeReadings {
    /// After the activity was created, before any user connected.
    pub before: Vec<Option<ProcSample>>,
    /// Everyone joined (sale still paused).
    pub peak: Vec<Option<ProcSample>>,
    /// At the end; for a killed node, just before the kill.
    pub last: Vec<Option<ProcSample>>,
}

impl NodeReadings {
    /// Replaces the `last` readings with `now` where `now` has one.
    pub fn refresh_last(&mut self, now: Vec<Option<ProcSample>>) {
        self.last.resize(now.len(), None);
        for (slot, r) in self.last.iter_mut().zip(now) {
            if r.is_some() {
                *slot = r;
            }
        }
    }
}

/// What one node did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeStats {
    pub id: String,
    pub url: String,
    /// `owner`, `owner (killed)`, `new owner`, or empty.
    pub role: String,
    /// Users whose join went through this node.
    pub sessions: usize,
    pub join_rate_per_sec: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_at_peak_kib: Option<u64>,
    /// (RSS at peak - RSS before) / sessions.
    pub kib_per_session: Option<f64>,
    pub max_rss_kib: Option<u64>,
    pub cpu_joins_secs: Option<f64>,
    /// To the end of the sale, or to the kill.
    pub cpu_run_secs: Option<f64>,
    /// Users whose first `admitted` came through this node.
    pub admitted: usize,
    /// Admission to client, for users connected when admitted (ms).
    pub admission_latency_ms: Summary,
    /// Reconnects that came back through this node.
    pub resumes_in: usize,
}

/// Node identities and the roles the failover gave them.
pub struct NodeRoles<'a> {
    pub ids: &'a [String],
    pub urls: &'a [String],
    pub owner_before: Option<usize>,
    pub owner_after: Option<usize>,
    pub killed: Option<usize>,
}

impl NodeRoles<'_> {
    fn role(&self, i: usize) -> String {
        let mut parts = Vec::new();
        if self.owner_before == Some(i) {
            parts.push("owner");
        }
        if self.killed == Some(i) {
            parts.push("killed");
        }
        if self.owner_after == Some(i) && self.owner_before != Some(i) {
            parts.push("new owner");
        }
        parts.join(", ")
    }
}

pub fn node_stats(
    records: &[UserRecord],
    roles: &NodeRoles,
    readings: &NodeReadings,
    series: &[NodeSample],
) -> Vec<NodeStats> {
    (0..roles.ids.len())
        .map(|i| {
            let mut s = NodeStats {
                id: roles.ids[i].clone(),
                url: roles.urls.get(i).cloned().unwrap_or_default(),
                role: roles.role(i),
                ..NodeStats::default()
            };
            crowd_through(&mut s, records, i);
            let at = |v: &Vec<Option<ProcSample>>| v.get(i).copied().flatten();
            let (before, peak, last) =
                (at(&readings.before), at(&readings.peak), at(&readings.last));
            s.rss_before_kib = before.map(|b| b.rss_kib);
            s.rss_at_peak_kib = peak.map(|p| p.rss_kib);
            if let (Some(b), Some(p)) = (before, peak) {
                s.cpu_joins_secs = Some(p.cpu_secs - b.cpu_secs);
                if s.sessions > 0 {
                    s.kib_per_session =
                        Some((p.rss_kib as f64 - b.rss_kib as f64) / s.sessions as f64);
                }
            }
            if let (Some(b), Some(l)) = (before, last) {
                s.cpu_run_secs = Some(l.cpu_secs - b.cpu_secs);
            }
            s.max_rss_kib = series
                .iter()
                .filter_map(|x| x.rss_kib.get(i).copied().flatten())
                .max();
            s
        })
        .collect()
}

/// Sessions, join rate, admissions and resumes through node `i`.
fn crowd_through(s: &mut NodeStats, records: &[UserRecord], i: usize) {
    let joined: Vec<&UserRecord> = records
        .iter()
        .filter(|r| r.joined_ms.is_some() && r.join_node == Some(i))
        .collect();
    s.sessions = joined.len();
    let first = joined
        .iter()
        .map(|r| r.connect_ms)
        .filter(|&c| c > 0.0)
        .fold(f64::INFINITY, f64::min);
    let last = joined
        .iter()
        .filter_map(|r| r.joined_ms)
        .fold(f64::NEG_INFINITY, f64::max);
    if last > first {
        s.join_rate_per_sec = joined.len() as f64 / ((last - first) / 1000.0);
    }
    let through: Vec<&UserRecord> = records
        .iter()
        .filter(|r| r.admitted_node == Some(i))
        .collect();
    s.admitted = through.len();
    let latencies: Vec<f64> = through
        .iter()
        .filter(|r| !r.admitted_on_resume())
        .filter_map(|r| r.admission_latency_ms())
        .collect();
    s.admission_latency_ms = Summary::of(&latencies);
    s.resumes_in = records
        .iter()
        .flat_map(|r| r.resumes.iter())
        .filter(|x| x.node_after == i && x.back_ms.is_some())
        .count();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(idx: usize, node: usize, connect: f64, joined: f64) -> UserRecord {
        UserRecord {
            idx,
            connect_ms: connect,
            joined_ms: Some(joined),
            join_node: Some(node),
            ..UserRecord::default()
        }
    }

    fn reading(rss_kib: u64, cpu_secs: f64) -> Option<ProcSample> {
        Some(ProcSample { rss_kib, cpu_secs })
    }

    #[test]
    fn memory_per_session_counts_only_the_nodes_own_sessions() {
        let records = vec![
            joined(0, 0, 1000.0, 1500.0),
            joined(1, 1, 1000.0, 1200.0),
            joined(2, 0, 1100.0, 2000.0),
        ];
        let ids = ["n1".to_string(), "n2".to_string()];
        let roles = NodeRoles {
            ids: &ids,
            urls: &[],
            owner_before: Some(0),
            owner_after: Some(1),
            killed: Some(0),
        };
        let readings = NodeReadings {
            before: vec![reading(1000, 1.0), reading(1000, 1.0)],
            peak: vec![reading(1100, 3.0), reading(1010, 1.5)],
            last: vec![reading(1200, 4.0), None],
        };
        let s = node_stats(&records, &roles, &readings, &[]);
        assert_eq!((s[0].sessions, s[1].sessions), (2, 1));
        assert_eq!(s[0].kib_per_session, Some(50.0));
        assert_eq!(s[1].kib_per_session, Some(10.0));
        assert_eq!(s[0].cpu_joins_secs, Some(2.0));
        assert_eq!(s[0].cpu_run_secs, Some(3.0));
        assert_eq!(s[1].cpu_run_secs, None);
        assert_eq!(s[0].join_rate_per_sec, 2.0);
        assert_eq!(s[0].role, "owner, killed");
        assert_eq!(s[1].role, "new owner");
    }

    #[test]
    fn a_killed_node_keeps_its_reading_from_before_the_kill() {
        let mut r = NodeReadings::default();
        r.refresh_last(vec![reading(5, 1.0), reading(6, 1.0)]);
        r.refresh_last(vec![None, reading(7, 2.0)]);
        assert_eq!(r.last[0].map(|x| x.rss_kib), Some(5));
        assert_eq!(r.last[1].map(|x| x.rss_kib), Some(7));
    }
}
