//! Time as an input: the domain takes `now` in unix milliseconds, the service reads it from a `Clock`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Unix time in milliseconds.
pub type Millis = u64;

/// Where the service reads the time; tests inject a `ManualClock` to step it.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> Millis;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; shared by clones.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn new(start_ms: Millis) -> Self {
        Self(Arc::new(AtomicU64::new(start_ms)))
    }
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn set_ms(&self, ms: Millis) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 in UTC with second precision, as the contract shows it. Every order in
/// an answer carries two, so the digits are written directly rather than through a
/// format description.
pub fn rfc3339(ms: Millis) -> String {
    utc_text(ms - ms % 1000, false)
}

/// RFC 3339 in UTC with millisecond precision, always three digits (so text order
/// is time order).
pub fn rfc3339_ms(ms: Millis) -> String {
    utc_text(ms, true)
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]Z`; the epoch for an instant past year 9999.
fn utc_text(ms: Millis, millis: bool) -> String {
    let (t, ms) = i64::try_from(ms / 1000)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or((time::OffsetDateTime::UNIX_EPOCH, 0), |t| (t, ms));
    let mut out = String::with_capacity(24);
    let year = u32::try_from(t.year()).unwrap_or(0);
    digits(&mut out, year, 4, "-");
    digits(&mut out, u32::from(u8::from(t.month())), 2, "-");
    digits(&mut out, u32::from(t.day()), 2, "T");
    digits(&mut out, u32::from(t.hour()), 2, ":");
    digits(&mut out, u32::from(t.minute()), 2, ":");
    digits(&mut out, u32::from(t.second()), 2, "");
    if millis {
        out.push('.');
        digits(&mut out, (ms % 1000) as u32, 3, "");
    }
    out.push('Z');
    out
}

/// The last `width` decimal digits of `n`, zero-padded, then `sep`.
fn digits(out: &mut String, n: u32, width: u32, sep: &str) {
    for p in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u32.pow(p) % 10) as u8));
    }
    out.push_str(sep);
}

/// Parses RFC 3339 with any offset; `None` if malformed or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_what_the_time_crate_writes() {
        let rfc = &time::format_description::well_known::Rfc3339;
        for ms in [
            0,
            999,
            1_000,
            1_700_000_000_123,
            951_782_400_000,
            253_402_300_799_999,
        ] {
            let t =
                time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).expect("in range");
            assert_eq!(rfc3339(ms), t.format(rfc).expect("formats"), "{ms}");
            let t = t + time::Duration::milliseconds((ms % 1000) as i64);
            let want = t.format(rfc).expect("formats");
            let want = match want.strip_suffix('Z').and_then(|w| w.split_once('.')) {
                Some((secs, frac)) => format!("{secs}.{frac:0<3}Z"),
                None => want.replace('Z', ".000Z"),
            };
            assert_eq!(rfc3339_ms(ms), want, "{ms}");
        }
        // Past year 9999 (beyond what the time crate represents): the epoch, as before.
        assert_eq!(rfc3339(253_402_300_800_000), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(253_402_300_800_001), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn rfc3339_round_trips_at_second_precision() {
        let ms = 1_764_583_200_000;
        assert_eq!(rfc3339(ms), "2025-12-01T10:00:00Z");
        assert_eq!(parse_rfc3339("2025-12-01T10:00:00Z"), Some(ms));
        assert_eq!(parse_rfc3339("2025-12-01T18:00:00+08:00"), Some(ms));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("1960-01-01T00:00:00Z"), None);
    }
}
