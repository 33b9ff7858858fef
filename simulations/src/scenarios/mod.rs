//! The scenarios. Each builds a [`crate::report::Report`]; the exit code is
//! 0 when every check passed, 1 when one failed, 2 when the run itself failed.

mod cluster;
mod common;
mod crash;
mod crash_campaign;
mod flash_sale;
mod hospital;
mod reconnect_storm;
mod sale;
mod sale_report;
mod sink_outage;
mod stalled_clients;

use crate::cli::Command;

pub async fn run(command: Command) -> i32 {
    let result = match command {
        Command::FlashSale(a) => flash_sale::run(a).await,
        Command::ReconnectStorm(a) => reconnect_storm::run(a).await,
        Command::Crash(a) => crash::run(a).await,
        Command::CrashCampaign(a) => crash_campaign::run(a).await,
        Command::SinkOutage(a) => sink_outage::run(a).await,
        Command::Hospital(a) => hospital::run(a).await,
        Command::Cluster(a) => cluster::run(a).await,
        Command::StalledClients(a) => stalled_clients::run(a).await,
        Command::Worker { .. } => Err("the worker subcommand is handled in main".to_string()),
    };
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("simulate: {e}");
            2
        }
    }
}
