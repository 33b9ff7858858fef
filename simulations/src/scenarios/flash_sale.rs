//! `simulate flash-sale`: N users race for S units.

use serde_json::json;

use super::common::Target;
use super::sale::{self, Twist};
use super::sale_report;
use crate::cli::FlashSaleArgs;
use crate::report::Report;

pub async fn run(args: FlashSaleArgs) -> Result<bool, String> {
    let mut report = Report::new("flash-sale", sale_report::params(&args, json!({})));
    let mut target = Target::open(&args.server, Vec::new()).await?;
    let (run, m) =
        sale_report::run_reported(&mut target, &args, "flash-sale", &Twist::None, &mut report)
            .await?;
    crate::fairness::verify_into(&mut report, &target.http, &target.url, &run.activity_id).await;
    let key = target.admin.key.clone();
    let (http, id) = (&target.http, &run.activity_id);
    crate::server_report::compare_into(&mut report, http, &key, id, &run.records, None).await;
    sale::finish_reported(target, report, &args, &run, json!({ "metrics": m })).await
}
