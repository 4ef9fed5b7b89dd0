//! The mutation gate: `cargo mutants` on the crates the tier policy names, the
//! score read from `mutants.out/outcomes.json`:
//! caught / (caught + missed + timeout) (unviable mutants do not count).

use super::{
    Check, OUT, POLICY, Planted, Report, SPEC, check, json_file, not_run, planted, run_cmd, tail,
    yaml,
};
use crate::waivers::Waiver;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

pub const CARGO_MUTANTS_VERSION: &str = "25.3.1";

/// Counts read from one `outcomes.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub caught: u64,
    pub missed: u64,
    pub timeout: u64,
    pub unviable: u64,
    /// `file:line: replacement` of each surviving mutant.
    pub survivors: Vec<String>,
}

impl Counts {
    /// None when no mutant was viable (nothing measured).
    pub fn score(&self) -> Option<f64> {
        let n = self.caught + self.missed + self.timeout;
        (n > 0).then(|| self.caught as f64 / n as f64)
    }
}

/// Read the outcomes; the baseline (unmutated tree) must have passed.
pub fn read_outcomes(v: &Value) -> Result<Counts, String> {
    let outcomes = v["outcomes"]
        .as_array()
        .ok_or("outcomes.json has no outcomes")?;
    let mut c = Counts::default();
    let mut baseline = None;
    for o in outcomes {
        let summary = o["summary"].as_str().unwrap_or("");
        if o["scenario"] == "Baseline" {
            baseline = Some(summary == "Success");
            continue;
        }
        match summary {
            "CaughtMutant" => c.caught += 1,
            "MissedMutant" => {
                c.missed += 1;
                let m = &o["scenario"]["Mutant"];
                c.survivors.push(format!(
                    "{}:{}: {} in {}",
                    m["file"].as_str().unwrap_or("?"),
                    m["span"]["start"]["line"],
                    m["replacement"].as_str().unwrap_or("?"),
                    m["function"]["function_name"].as_str().unwrap_or("?"),
                ));
            }
            "Timeout" => c.timeout += 1,
            "Unviable" => c.unviable += 1,
            other => return Err(format!("unexpected mutant outcome {other:?}")),
        }
    }
    match baseline {
        Some(true) => Ok(c),
        Some(false) => Err("the unmutated baseline failed its tests".into()),
        None if outcomes.is_empty() => Err("no outcomes recorded".into()),
        // `--baseline skip` runs have no baseline entry.
        None => Ok(c),
    }
}

/// Run `cargo mutants` in `dir` on `packages`, output under `out`; extra args (e.g.
/// `--in-diff FILE`). Returns the counts or why there are none.
pub fn run_mutants(
    dir: &Path,
    packages: &[String],
    out: &Path,
    extra: &[String],
) -> Result<Counts, String> {
    let _ = std::fs::remove_dir_all(out.join("mutants.out"));
    let mut cmd = Command::new("cargo");
    cmd.current_dir(dir)
        .args(["mutants", "--no-shuffle", "--colors", "never"]);
    for p in packages {
        cmd.args(["--package", p]);
    }
    cmd.arg("--output").arg(out).args(extra);
    let (_, log) = run_cmd(&mut cmd);
    // Exit codes 2 (missed) and 3 (timeouts) are results, not errors: read the
    // outcomes whatever the status was.
    let path = out.join("mutants.out/outcomes.json");
    if !path.is_file()
        && (log.contains("No mutants to filter") || log.contains("Diff file is empty"))
    {
        // A diff that touches no mutable code: nothing to measure.
        return Ok(Counts::default());
    }
    let v = json_file(&path).map_err(|e| format!("{e}; cargo mutants said: {}", tail(&log)))?;
    read_outcomes(&v)
}

/// The pinned cargo-mutants is installed (its outcomes format is what we read).
pub fn installed() -> bool {
    let (ok, out) = super::run("cargo", &["mutants", "--version"]);
    ok && out.contains(CARGO_MUTANTS_VERSION)
}

pub struct Mutation;

impl super::Gate for Mutation {
    fn name(&self) -> &'static str {
        "mutation"
    }
    fn run(&self, w: &[Waiver], args: &[String]) -> Result<bool, String> {
        gate(w, args)
    }
    /// A crate whose test checks too little.
    fn plant(&self, scratch: &Path) -> Vec<Planted> {
        let what = "a crate whose test checks too little";
        if !installed() {
            return vec![planted(what, false, "cargo-mutants missing: cannot plant")];
        }
        vec![match plant(scratch) {
            Ok(score) => planted(
                what,
                score < 0.5,
                format!("{:.0}% of planted mutants caught", score * 100.0),
            ),
            Err(e) => planted(what, false, e),
        }]
    }
}

/// `caws mutation [--in-diff FILE | --shard K/N]`: every mutant by default.
pub fn gate(w: &[Waiver], args: &[String]) -> Result<bool, String> {
    let mut g = Report::new("mutation");
    let spec = yaml(Path::new(SPEC))?;
    let policy = json_file(Path::new(POLICY))?;
    let tier = spec["risk_tier"].to_string();
    let min = policy["tiers"][&tier]["mutation_min"]
        .as_f64()
        .ok_or("tier policy has no mutation minimum")?;
    let packages: Vec<String> = policy["mutation_packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(String::from))
        .collect();
    if packages.is_empty() {
        return Err("tier policy names no mutation_packages".into());
    }
    if !installed() {
        g.checks.push(not_run(
            "mutation_score",
            format!("cargo-mutants {CARGO_MUTANTS_VERSION} is not installed (make caws-tools)"),
        ));
        return g.finish(w);
    }
    // A diff (`--in-diff FILE`) or a shard (`--shard K/N`, every N-th mutant: a
    // sample) narrows the run; without either every mutant runs.
    // Each mutant rebuilds the crate and its test binaries: the `mutants` profile
    // (Cargo.toml) compiles them unoptimized, about 2.4x faster per mutant here, with
    // the same mutants caught.
    let mut extra = vec!["--profile".to_string(), "mutants".to_string()];
    let mut scope = "full".to_string();
    for flag in ["--in-diff", "--shard"] {
        if let Some(v) = super::flag_values(args, flag).first() {
            extra.extend([flag.to_string(), v.to_string()]);
            scope = format!("{} {v}", flag.trim_start_matches('-'));
        }
    }
    let started = std::time::Instant::now();
    let out = std::env::current_dir().unwrap_or_default().join(OUT);
    match run_mutants(Path::new("."), &packages, &out, &extra) {
        Ok(c) => {
            let score = c.score();
            g.metrics = json!({
                "mutation_score": score, "caught": c.caught, "missed": c.missed,
                "timeout": c.timeout, "unviable": c.unviable, "packages": packages,
                "scope": scope,
                "seconds": started.elapsed().as_secs(),
                "survivors": c.survivors,
            });
            g.checks.push(score_check(&c, min, &tier));
        }
        Err(e) => g.checks.push(check("mutation_score", false, e)),
    }
    g.finish(w)
}

fn score_check(c: &Counts, min: f64, tier: &str) -> Check {
    match c.score() {
        Some(s) => check(
            "mutation_score",
            s >= min,
            format!(
                "{:.1}%: {} caught, {} missed, {} timed out, {} unviable (tier {tier} minimum {:.0}%)",
                s * 100.0,
                c.caught,
                c.missed,
                c.timeout,
                c.unviable,
                min * 100.0
            ),
        ),
        // Nothing to mutate (an empty diff): nothing measured, which is not a failure.
        None => check(
            "mutation_score",
            c.caught + c.missed + c.timeout == 0,
            "no viable mutant in scope",
        ),
    }
}

/// The selftest's planted defect: a crate whose test runs the code but checks too
/// little, so most mutants survive.
pub fn plant(scratch: &Path) -> Result<f64, String> {
    let krate = super::scratch_crate(
        scratch,
        "weak-tests",
        "pub fn gain(x: i32) -> i32 { if x > 10 { x * 2 } else { x + 3 } }\n\
         #[test] fn runs() { assert!(gain(5) > 0); }\n",
    )?;
    let c = run_mutants(&krate, &["weak-tests".into()], &scratch.join("mut"), &[])?;
    c.score().ok_or_else(|| "no viable mutant planted".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_counts_caught_missed_and_timeouts_not_unviable() {
        let v = json!({"outcomes": [
            {"scenario": "Baseline", "summary": "Success"},
            {"scenario": {"Mutant": {"file": "a.rs", "span": {"start": {"line": 3}}, "replacement": "0", "function": {"function_name": "f"}}}, "summary": "MissedMutant"},
            {"scenario": {"Mutant": {}}, "summary": "CaughtMutant"},
            {"scenario": {"Mutant": {}}, "summary": "CaughtMutant"},
            {"scenario": {"Mutant": {}}, "summary": "Timeout"},
            {"scenario": {"Mutant": {}}, "summary": "Unviable"},
        ]});
        let c = read_outcomes(&v).unwrap();
        assert_eq!((c.caught, c.missed, c.timeout, c.unviable), (2, 1, 1, 1));
        assert_eq!(c.score(), Some(0.5));
        assert_eq!(c.survivors, ["a.rs:3: 0 in f"]);
        assert_eq!(score_check(&c, 0.5, "2").status, crate::caws::Status::Pass);
        assert_eq!(score_check(&c, 0.6, "2").status, crate::caws::Status::Fail);
    }

    #[test]
    fn a_failed_baseline_or_odd_outcome_is_an_error() {
        let v = json!({"outcomes": [{"scenario": "Baseline", "summary": "Failure"}]});
        assert!(read_outcomes(&v).is_err());
        let v = json!({"outcomes": [{"scenario": {"Mutant": {}}, "summary": "Weird"}]});
        assert!(read_outcomes(&v).is_err());
        assert!(read_outcomes(&json!({})).is_err());
        assert!(read_outcomes(&json!({"outcomes": []})).is_err());
    }

    #[test]
    fn an_empty_scope_passes_without_a_score() {
        let c = Counts::default();
        assert_eq!(c.score(), None);
        assert_eq!(score_check(&c, 0.5, "2").status, crate::caws::Status::Pass);
    }
}
