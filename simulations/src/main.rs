//! `simulate`: drives a sluice server through its public API and reports.
//! Each scenario lives in `scenarios/`; users in `user/`; reports in `report.rs`.

mod admin;
mod charts;
mod cli;
mod client;
mod crowd;
mod fairness;
mod jwt;
mod metrics;
mod plan;
mod pow;
mod protocol;
mod report;
mod sampler;
mod scenarios;
mod server;
mod server_report;
mod stats;
mod timefmt;
mod user;
mod worker;

use clap::Parser as _;

fn main() {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("simulate: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            cli::Command::Worker { plan } => match worker::main_child(&plan).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("simulate worker: {e}");
                    2
                }
            },
            cmd => scenarios::run(cmd).await,
        }
    });
    // Leftover sockets and tasks end with the process.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code);
}
