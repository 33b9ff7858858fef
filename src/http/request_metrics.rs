//! `sluice_http_requests_total` and `sluice_http_request_seconds`, kept here rather
//! than in the `metrics` crate's recorder: its histograms pin crossbeam-epoch on every
//! record, and a pinned HTTP worker then runs whatever garbage other threads left in
//! the global epoch queue (sled's freed pages): 13% of a worker's time under a
//! purchase load, plus allocator lock waits. A short mutex over a few dozen series
//! costs well under a microsecond and allocates nothing after a series first appears.

use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets, as documented in docs/observability.md.
const BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

struct Series {
    route: &'static str,
    status: u16,
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [u64; BOUNDS.len() + 1],
    sum: f64,
    count: u64,
}

/// Process-wide, like the Prometheus recorder: every app in the process reports here.
static SERIES: Mutex<Vec<Series>> = Mutex::new(Vec::new());

/// Counts one response and its latency. `route` comes from a fixed set of labels.
pub fn record(route: &'static str, status: u16, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let bucket = BOUNDS
        .iter()
        .position(|b| secs <= *b)
        .unwrap_or(BOUNDS.len());
    let mut all = SERIES.lock().unwrap_or_else(|e| e.into_inner());
    let i = match all
        .iter()
        .position(|s| s.status == status && s.route == route)
    {
        Some(i) => i,
        None => {
            all.push(Series {
                route,
                status,
                buckets: [0; BOUNDS.len() + 1],
                sum: 0.0,
                count: 0,
            });
            all.len() - 1
        }
    };
    let s = &mut all[i];
    s.buckets[bucket] += 1;
    s.sum += secs;
    s.count += 1;
}

/// Appends both metrics in the Prometheus text format.
pub fn render(out: &mut String) {
    let all = SERIES.lock().unwrap_or_else(|e| e.into_inner());
    if all.is_empty() {
        return;
    }
    out.push_str("# TYPE sluice_http_requests_total counter\n");
    for s in all.iter() {
        let _ = writeln!(
            out,
            "sluice_http_requests_total{{route=\"{}\",status=\"{}\"}} {}",
            s.route, s.status, s.count
        );
    }
    out.push_str("\n# TYPE sluice_http_request_seconds histogram\n");
    for s in all.iter() {
        let labels = format!("route=\"{}\",status=\"{}\"", s.route, s.status);
        let mut cumulative = 0;
        for (bound, n) in BOUNDS.iter().zip(&s.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "sluice_http_request_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "sluice_http_request_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            s.count
        );
        let _ = writeln!(out, "sluice_http_request_seconds_sum{{{labels}}} {}", s.sum);
        let _ = writeln!(
            out,
            "sluice_http_request_seconds_count{{{labels}}} {}",
            s.count
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
    }

    #[test]
    fn buckets_are_cumulative_and_counts_match() {
        // A route label no other test uses: the series are process-wide.
        let route = "/test/request-metrics";
        record(route, 201, Duration::from_micros(300));
        record(route, 201, Duration::from_millis(3));
        record(route, 201, Duration::from_secs(10));
        let mut text = String::new();
        render(&mut text);
        let labels = format!("route=\"{route}\",status=\"201\"");
        let bucket = |le: &str| {
            line(
                &text,
                &format!("sluice_http_request_seconds_bucket{{{labels},le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("0.0005"), Some("1"));
        assert_eq!(bucket("0.0025"), Some("1"));
        assert_eq!(bucket("0.005"), Some("2"));
        assert_eq!(bucket("2.5"), Some("2"));
        assert_eq!(bucket("+Inf"), Some("3"));
        assert_eq!(
            line(&text, &format!("sluice_http_requests_total{{{labels}}}")),
            Some("3")
        );
        assert_eq!(
            line(
                &text,
                &format!("sluice_http_request_seconds_count{{{labels}}}")
            ),
            Some("3")
        );
        assert_eq!(text.matches("# TYPE sluice_http_requests_total").count(), 1);
    }
}
