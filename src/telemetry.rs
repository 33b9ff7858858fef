//! Tracing subscriber: pretty for people, JSON for log pipelines; `RUST_LOG` overrides.

use crate::config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;

pub fn init(s: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&s.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match s.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
