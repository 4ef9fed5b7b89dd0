//! The contracts gate: consumer side (kokoro-core's validation, used by both
//! tiers, against the contract) and provider side (schemathesis against each
//! running server, `provider.rs`).

use super::{
    OUT, Planted, Report, Status, check, flag_values, not_run, planted, provider, run, tail,
};
use crate::waivers::Waiver;
use serde_json::json;
use std::path::Path;

pub struct Contracts;

impl super::Gate for Contracts {
    fn name(&self) -> &'static str {
        "contracts"
    }
    fn run(&self, w: &[Waiver], args: &[String]) -> Result<bool, String> {
        gate_contracts(w, args)
    }
    fn standalone(&self) -> bool {
        false
    }
    /// A server whose answers break the contract.
    fn plant(&self, scratch: &Path) -> Vec<Planted> {
        vec![match provider::broken_server() {
            Ok(url) => {
                let c = provider::provider_check("broken", &url, &scratch.join("broken.xml"), 3, 1);
                planted(
                    "a contract-breaking server",
                    c.status == Status::Fail,
                    c.detail,
                )
            }
            Err(e) => planted("a contract-breaking server", false, e),
        }]
    }
}

/// `caws contracts [--provider NAME=URL]... [--examples N] [--seed S]`: consumer side
/// (kokoro-core's validation, used by both tiers, against the contract), provider
/// side (schemathesis against each running server).
fn gate_contracts(w: &[Waiver], args: &[String]) -> Result<bool, String> {
    let mut g = Report::new("contracts");
    let (ok, out) = run(
        "cargo",
        &["test", "-q", "-p", "kokoro-core", "--test", "contract"],
    );
    g.checks
        .push(check("core_matches_contract", ok, tail(&out)));
    let examples = flag_values(args, "--examples")
        .first()
        .map_or(Ok(20), |v| v.parse())
        .map_err(|e| format!("--examples: {e}"))?;
    let seed = flag_values(args, "--seed")
        .first()
        .map_or(Ok(1), |v| v.parse())
        .map_err(|e| format!("--seed: {e}"))?;
    let providers = flag_values(args, "--provider");
    if providers.is_empty() {
        g.checks.push(not_run(
            "schemathesis_provider",
            "no running server given (make caws-contracts starts them)",
        ));
    }
    let mut names = Vec::new();
    for p in providers {
        let (name, url) = p
            .split_once('=')
            .ok_or_else(|| format!("--provider wants NAME=URL, got {p}"))?;
        let report = std::env::current_dir()
            .unwrap_or_default()
            .join(OUT)
            .join(format!("schemathesis-{name}.xml"));
        std::fs::create_dir_all(OUT).map_err(|e| format!("{OUT}: {e}"))?;
        g.checks
            .push(provider::provider_check(name, url, &report, examples, seed));
        names.push(name.to_string());
    }
    g.metrics = json!({"providers": names, "examples_per_operation": examples, "seed": seed});
    g.finish(w)
}
