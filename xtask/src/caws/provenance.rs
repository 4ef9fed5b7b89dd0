//! Provenance: `.agent/provenance.json` from the gates' typed reports (validated
//! against `.caws/schemas/provenance.schema.json`), and the trust score:
//! coverage x0.25 + mutation x0.25 + contracts x0.2 + a11y x0.1 + perf x0.1 +
//! flake x0.1, coverage and mutation scored min(value / tier minimum, 1), a gate
//! that did not run scoring 0; any active waiver caps the score at 79. No figure
//! is typed by hand.

use super::{
    OUT, POLICY, PROV_SCHEMA, REGISTRY, Report, SPEC, SPEC_SCHEMA, Status, json_file, read_report,
    run, yaml,
};
use crate::schema;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What the trust score is computed from.
#[derive(Debug, Clone, Copy)]
pub struct TrustInputs {
    pub coverage: Option<f64>,
    pub cov_min: f64,
    pub mutation: Option<f64>,
    pub mut_min: f64,
    pub contracts: f64,
    pub a11y: f64,
    pub perf: f64,
    pub flake_rate: Option<f64>,
    pub waived: bool,
}

/// The trust score from gate results (0 for a gate that did not run).
pub fn trust_score(t: &TrustInputs) -> f64 {
    let ratio = |v: Option<f64>, min: f64| v.map_or(0.0, |v| (v / min).min(1.0));
    let score = 100.0
        * (0.25 * ratio(t.coverage, t.cov_min)
            + 0.25 * ratio(t.mutation, t.mut_min)
            + 0.2 * t.contracts
            + 0.1 * t.a11y
            + 0.1 * t.perf
            + 0.1 * t.flake_rate.map_or(0.0, |f| 1.0 - f));
    let score = (score * 10.0).round() / 10.0;
    if t.waived { score.min(79.0) } else { score }
}

fn sha256_of(paths: &[PathBuf]) -> String {
    let mut h = Sha256::new();
    for p in paths {
        h.update(p.display().to_string().as_bytes());
        h.update(std::fs::read(p).unwrap_or_default());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write `.agent/provenance.json` from the gates' last reports; true when every
/// gate passed.
pub fn write() -> Result<bool, String> {
    let spec = yaml(Path::new(SPEC))?;
    let policy = json_file(Path::new(POLICY))?;
    let tier = spec["risk_tier"].to_string();
    let cov_min = policy["tiers"][&tier]["coverage"]["min"]
        .as_f64()
        .unwrap_or(1.0);
    let mut_min = policy["tiers"][&tier]["mutation_min"]
        .as_f64()
        .unwrap_or(1.0);
    let metric = policy["tiers"][&tier]["coverage"]["metric"]
        .as_str()
        .unwrap_or("branch");
    let results: Vec<(&'static str, Option<Report>)> = REGISTRY
        .iter()
        .map(|g| (g.name(), read_report(g.name())))
        .collect();
    let get = |name: &str| {
        results
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, r)| r.as_ref())
    };
    let passed = |name: &str| get(name).is_some_and(|r| r.status == Status::Pass);
    let coverage = get("unit").and_then(|r| r.number("branch_coverage"));
    let mutation = get("mutation").and_then(|r| r.number("mutation_score"));
    let consumer = get("contracts").and_then(|r| r.checks_pass("core_matches_contract"));
    let provider = get("contracts").and_then(|r| r.checks_pass("schemathesis"));
    let perf_ok = passed("perf");
    let a11y = get("integration").map(|r| r.metrics["intelligibility"] == "pass");
    let flake = get("integration").and_then(|r| r.number("flake_rate"));
    let waived_ids: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref())
        .flat_map(|r| r.waivers.iter().cloned())
        .collect();
    let trust = trust_score(&TrustInputs {
        coverage,
        cov_min,
        mutation,
        mut_min,
        contracts: if provider == Some(true) && consumer == Some(true) {
            1.0
        } else {
            0.0
        },
        a11y: if a11y == Some(true) { 1.0 } else { 0.0 },
        perf: if perf_ok { 1.0 } else { 0.0 },
        flake_rate: flake,
        waived: !waived_ids.is_empty(),
    });
    let inputs: Vec<PathBuf> = [
        SPEC,
        SPEC_SCHEMA,
        PROV_SCHEMA,
        POLICY,
        "contracts/kokoro-tts-api.yaml",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let artifacts: Vec<PathBuf> = REGISTRY
        .iter()
        .map(|g| Path::new(OUT).join(format!("{}.json", g.name())))
        .chain([PathBuf::from("target/loadtest/result.json")])
        .filter(|p| p.is_file())
        .collect();
    let (_, commit) = run("git", &["rev-parse", "HEAD"]);
    let perf = get("perf").map_or(json!({}), |r| r.metrics.clone());
    let prov = json!({
        "agent": std::env::var("CAWS_AGENT").unwrap_or_else(|_| "kokoro-edge xtask".into()),
        "model": std::env::var("CAWS_MODEL").unwrap_or_else(|_| "unknown".into()),
        "commit": commit.trim(),
        "artifacts": artifacts.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "results": {
            "coverage": {"metric": metric, "value": coverage},
            "mutation_score": mutation,
            "tests_passed": get("integration").map(|r| r.status == Status::Pass),
            "contracts": {"consumer": consumer, "provider": provider},
            "a11y": match a11y { Some(true) => "pass", Some(false) => "fail", None => "not_run" },
            "perf": perf,
            "flake_rate": flake,
        },
        "gates": results.iter().map(|(n, r)| (n.to_string(), json!(r.as_ref().map_or(Status::NotRun, |r| r.status)))).collect::<serde_json::Map<_, _>>(),
        "waivers": waived_ids,
        "approvals": [],
        "attestations": {"inputs_sha256": sha256_of(&inputs), "artifacts_sha256": sha256_of(&artifacts)},
        "trust_score": trust,
    });
    let errors = schema::validate(&json_file(Path::new(PROV_SCHEMA))?, &prov);
    std::fs::create_dir_all(".agent").map_err(|e| format!(".agent: {e}"))?;
    std::fs::write(
        ".agent/provenance.json",
        serde_json::to_string_pretty(&prov).unwrap_or_default(),
    )
    .map_err(|e| format!(".agent/provenance.json: {e}"))?;
    if !errors.is_empty() {
        return Err(format!(
            "provenance does not match its schema: {}",
            errors.join("; ")
        ));
    }
    println!("trust score: {trust} (tier {tier}; see .agent/provenance.json)");
    Ok(REGISTRY.iter().all(|g| passed(g.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_score_formula() {
        let full = TrustInputs {
            coverage: Some(0.9),
            cov_min: 0.8,
            mutation: Some(0.6),
            mut_min: 0.5,
            contracts: 1.0,
            a11y: 1.0,
            perf: 1.0,
            flake_rate: Some(0.0),
            waived: false,
        };
        assert_eq!(trust_score(&full), 100.0);
        let half_cov = TrustInputs {
            coverage: Some(0.4),
            mutation: Some(0.5),
            ..full
        };
        assert_eq!(trust_score(&half_cov), 87.5);
        assert_eq!(
            trust_score(&TrustInputs {
                waived: true,
                ..full
            }),
            79.0
        );
        let nothing = TrustInputs {
            coverage: None,
            mutation: None,
            contracts: 0.0,
            a11y: 0.0,
            perf: 0.0,
            flake_rate: None,
            ..full
        };
        assert_eq!(trust_score(&nothing), 0.0);
    }
}
