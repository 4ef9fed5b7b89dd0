//! The unit gate: the tests of the pure crates under `cargo +nightly llvm-cov
//! --branch`, branch coverage from its JSON export against the tier minimum.

use super::{
    OUT, POLICY, Planted, Report, SPEC, available, check, json_file, not_run, planted, run_cmd,
    scratch_crate, tail, yaml,
};
use crate::waivers::Waiver;
use serde_json::json;
use std::path::Path;
use std::process::Command;

pub struct Unit;

impl super::Gate for Unit {
    fn name(&self) -> &'static str {
        "unit"
    }
    fn run(&self, w: &[Waiver], _args: &[String]) -> Result<bool, String> {
        gate_unit(w)
    }
    /// A crate whose test takes one side of a branch only.
    fn plant(&self, scratch: &Path) -> Vec<Planted> {
        let what = "a branch no test takes";
        if !available("cargo", &["+nightly", "llvm-cov", "--version"]) {
            return vec![planted(
                what,
                false,
                "cargo-llvm-cov or nightly missing: cannot plant",
            )];
        }
        let krate = match scratch_crate(
            scratch,
            "uncovered",
            "pub fn sign(x: i32) -> i32 { if x < 0 { -1 } else if x == 0 { 0 } else { 1 } }\n\
             #[test] fn positive() { assert_eq!(sign(5), 1); }\n",
        ) {
            Ok(k) => k,
            Err(e) => return vec![planted(what, false, e)],
        };
        let (_, _, cov) = branch_coverage(&krate, &[], &scratch.join("cov.json"));
        vec![match cov {
            Ok((v, n)) => planted(what, v < 0.8, format!("{:.0}% of {n} branches", v * 100.0)),
            Err(e) => planted(what, false, e),
        }]
    }
}

/// The crates whose tests the coverage gate measures: the pure logic both tiers
/// share (the model-backed crates are exercised by the integration and e2e suites).
const COVERED: [&str; 2] = ["kokoro-core", "kokoro-synth"];

/// Branch coverage with `cargo +nightly llvm-cov --branch`, read from its JSON export.
fn gate_unit(w: &[Waiver]) -> Result<bool, String> {
    let mut g = Report::new("unit");
    let spec = yaml(Path::new(SPEC))?;
    let policy = json_file(Path::new(POLICY))?;
    let tier = spec["risk_tier"].to_string();
    let min = policy["tiers"][&tier]["coverage"]["min"]
        .as_f64()
        .ok_or("tier policy has no coverage minimum")?;
    if !available("cargo", &["+nightly", "llvm-cov", "--version"]) {
        g.checks.push(not_run(
            "branch_coverage",
            "cargo-llvm-cov or the nightly toolchain is missing (make caws-tools)",
        ));
        return g.finish(w);
    }
    std::fs::create_dir_all(OUT).map_err(|e| format!("{OUT}: {e}"))?;
    let report = std::env::current_dir()
        .unwrap_or_default()
        .join(OUT)
        .join("llvm-cov.json");
    let mut packages = Vec::new();
    for c in COVERED {
        packages.extend(["-p", c]);
    }
    let (ok, detail, cov) = branch_coverage(Path::new("."), &packages, &report);
    g.checks.push(check("tests", ok, detail));
    match cov {
        Ok((value, n)) => {
            g.metrics = json!({"branch_coverage": value, "branches": n, "crates": COVERED});
            g.checks.push(check(
                "branch_coverage",
                value >= min,
                format!(
                    "{:.1}% of {n} branches (tier {tier} minimum {:.0}%)",
                    value * 100.0,
                    min * 100.0
                ),
            ));
        }
        Err(e) => g.checks.push(check("branch_coverage", false, e)),
    }
    g.finish(w)
}

/// Run the tests of `dir` under `cargo +nightly llvm-cov --branch`; returns (tests
/// passed, detail, (covered fraction, branch count)).
fn branch_coverage(
    dir: &Path,
    packages: &[&str],
    report: &Path,
) -> (bool, String, Result<(f64, f64), String>) {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(dir)
        .args([
            "+nightly",
            "llvm-cov",
            "--branch",
            "--json",
            "--summary-only",
        ])
        .args(packages)
        .arg("--output-path")
        .arg(report);
    let (ok, out) = run_cmd(&mut cmd);
    let cov = json_file(report).and_then(|v| {
        let b = &v["data"][0]["totals"]["branches"];
        match (b["count"].as_f64(), b["covered"].as_f64()) {
            (Some(n), Some(c)) if n > 0.0 => Ok((c / n, n)),
            _ => Err("no branch data in the report".to_string()),
        }
    });
    (ok, tail(&out), cov)
}
