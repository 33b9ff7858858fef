//! The `sluice` binary: read settings, start telemetry, build and run the application.

use sluice::config::Settings;
use sluice::domain::clock::SystemClock;
use sluice::startup::Application;
use std::path::PathBuf;
use std::sync::Arc;

// jemalloc: see Cargo.toml and docs/performance.md for what it was measured to buy.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn config_path() -> anyhow::Result<Option<PathBuf>> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (None, _) => Ok(None),
        (Some("--config"), Some(path)) => Ok(Some(PathBuf::from(path))),
        _ => anyhow::bail!("usage: sluice [--config FILE]"),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(config_path()?.as_deref())?;
    sluice::telemetry::init(&settings.log);
    let bind = settings.server.bind.clone();
    let app = Application::build(settings, Arc::new(SystemClock)).await?;
    tracing::info!(%bind, "sluice serving");
    actix_web::rt::spawn(app.stopper().on_signals());
    app.run_until_stopped().await?;
    Ok(())
}
