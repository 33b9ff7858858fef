//! The `sluice` binary: read settings, start telemetry, build and run the application;
//! `sluice check-config` validates a configuration and prints it, secrets redacted.

use sluice::config::Settings;
use sluice::domain::clock::SystemClock;
use sluice::startup::Application;
use std::path::PathBuf;
use std::sync::Arc;

// jemalloc: see Cargo.toml and docs/performance.md for what it was measured to buy.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// What the command line asks for.
enum Command {
    /// Serve, with this configuration file (or the defaults).
    Serve(Option<PathBuf>),
    /// Validate the configuration and print it, secrets redacted.
    CheckConfig(Option<PathBuf>),
}

const USAGE: &str = "usage: sluice [--config FILE]\n       sluice check-config [--config FILE]";

fn command() -> anyhow::Result<Command> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.first().is_some_and(|a| a == "check-config");
    if check {
        args.remove(0);
    }
    let file = match args.as_slice() {
        [] => None,
        [flag, path] if flag == "--config" => Some(PathBuf::from(path)),
        _ => anyhow::bail!(USAGE),
    };
    Ok(if check {
        Command::CheckConfig(file)
    } else {
        Command::Serve(file)
    })
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let file = match command()? {
        Command::Serve(file) => file,
        Command::CheckConfig(file) => {
            match Settings::check(file.as_deref()) {
                Ok(effective) => {
                    println!("# configuration is valid; effective settings (secrets redacted):\n{effective}");
                    return Ok(());
                }
                Err(e) => {
                    eprintln!("sluice check-config: {e:#}");
                    std::process::exit(1);
                }
            }
        }
    };
    let settings = Settings::load(file.as_deref())?;
    sluice::telemetry::init(&settings.log);
    let bind = settings.server.bind.clone();
    let app = Application::build(settings, Arc::new(SystemClock)).await?;
    tracing::info!(%bind, "sluice serving");
    actix_web::rt::spawn(app.stopper().on_signals());
    app.run_until_stopped().await?;
    Ok(())
}
