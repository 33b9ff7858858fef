//! RFC 3339 timestamps (for `opens_at` and report headers).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn rfc3339_now() -> String {
    rfc3339_in(0.0)
}

/// Now plus `secs` seconds, as RFC 3339 UTC with whole seconds.
pub fn rfc3339_in(secs: f64) -> String {
    let t = OffsetDateTime::now_utc() + time::Duration::seconds_f64(secs);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Unix milliseconds of an RFC 3339 timestamp.
pub fn unix_ms(s: &str) -> Option<f64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e6)
}
