//! `outlet advise`: the mechanism that fits a plugin's trust, call rate and deployment, and why.

use std::process::ExitCode;

use outlet_manifest::{Deploy, Perf, Trust, advise};

pub fn run(trust: Trust, perf: Perf, deploy: Deploy, json: bool) -> anyhow::Result<ExitCode> {
    let advice = advise(trust, perf, deploy);
    if json {
        let out = serde_json::json!({
            "mechanism": advice.mechanism.name(),
            "reason": advice.reason,
            "trust": trust.name(),
            "perf": perf.to_string(),
            "deploy": deploy.to_string(),
        });
        println!("{out:#}");
    } else {
        println!("{}", advice.mechanism);
        println!("{}", advice.reason);
    }
    Ok(ExitCode::SUCCESS)
}
