//! The integration gate: the end-to-end suite (edge + backend + wasi-nn edge on the
//! real model, started by `make caws-integration`) run several times, each run's
//! JUnit report read back. Tests pass only when every test passed in every run;
//! the flake rate is the share of tests whose outcome changed between runs; a11y is
//! the intelligibility tests (PocketSphinx transcribes our audio) passing.

use super::junit::{self, Cases, Outcome};
use super::{
    Check, OUT, Planted, Report, Status, check, flag_values, not_run, planted, run_cmd, tail,
};
use crate::waivers::Waiver;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Tests that check what a listener hears (speech recognition on our output).
fn is_a11y(id: &str) -> bool {
    id.contains("intelligib")
}

/// Run pytest on `suite` `runs` times, reports under `out`.
pub fn run_suite(suite: &[&str], runs: usize, out: &Path) -> Result<Vec<Cases>, String> {
    let python = std::env::current_dir()
        .unwrap_or_default()
        .join(".venv/bin/python");
    let mut all = Vec::new();
    for i in 1..=runs {
        let report = out.join(format!("integration-run{i}.xml"));
        let _ = std::fs::remove_file(&report);
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .args(suite)
            .arg(format!("--junitxml={}", report.display()));
        let (_, log) = run_cmd(&mut cmd);
        let text = std::fs::read_to_string(&report)
            .map_err(|e| format!("run {i}: no JUnit report ({e}): {}", tail(&log)))?;
        all.push(junit::parse(&text).map_err(|e| format!("run {i}: {e}: {}", tail(&log)))?);
        println!("  run {i}/{runs}: {}", summary(all.last().expect("pushed")));
        let slow: Vec<String> = junit::slowest(&text, 8)
            .into_iter()
            .map(|(name, secs)| format!("{name} {secs:.0} s"))
            .collect();
        println!("    slowest: {}", slow.join(", "));
    }
    Ok(all)
}

fn summary(c: &Cases) -> String {
    let n = |o| c.values().filter(|v| **v == o).count();
    format!(
        "{} passed, {} failed, {} skipped",
        n(Outcome::Passed),
        n(Outcome::Failed),
        n(Outcome::Skipped)
    )
}

/// The gate's checks and metrics from the runs' outcomes.
pub fn judge(runs: &[Cases]) -> (Vec<Check>, Value) {
    let flaky = junit::flaky(runs);
    let mut ids: Vec<&String> = runs.iter().flat_map(|r| r.keys()).collect();
    ids.sort();
    ids.dedup();
    let total = ids.len();
    let failed: Vec<&String> = ids
        .iter()
        .copied()
        .filter(|id| runs.iter().any(|r| r.get(*id) == Some(&Outcome::Failed)))
        .collect();
    let flake_rate = if total == 0 {
        None
    } else {
        Some(flaky.len() as f64 / total as f64)
    };
    let a11y: Vec<&String> = ids.iter().copied().filter(|id| is_a11y(id)).collect();
    let a11y_ok = !a11y.is_empty()
        && a11y
            .iter()
            .all(|id| runs.iter().all(|r| r.get(*id) == Some(&Outcome::Passed)));
    let checks = vec![
        check(
            "e2e",
            total > 0 && failed.is_empty(),
            format!(
                "{total} tests x {} runs; {}",
                runs.len(),
                if failed.is_empty() {
                    "all passed".to_string()
                } else {
                    format!("failed: {}", join(&failed))
                }
            ),
        ),
        check(
            "flake_rate",
            flaky.is_empty(),
            if flaky.is_empty() {
                "0 tests changed outcome between runs".to_string()
            } else {
                format!("changed outcome between runs: {}", join(&flaky))
            },
        ),
        check(
            "intelligibility",
            a11y_ok,
            format!("{} speech-recognition tests", a11y.len()),
        ),
    ];
    let metrics = json!({
        "tests": total, "runs": runs.len(), "failed": failed, "flaky": flaky,
        "flake_rate": flake_rate,
        "intelligibility": if a11y_ok { "pass" } else { "fail" },
        "skipped": ids.iter().filter(|id| runs.iter().all(|r| r.get(**id) == Some(&Outcome::Skipped))).count(),
    });
    (checks, metrics)
}

fn join<S: AsRef<str>>(v: &[S]) -> String {
    let shown: Vec<&str> = v.iter().take(8).map(AsRef::as_ref).collect();
    let more = v.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// The selftest's planted defect: a test that fails every other run.
pub fn plant(scratch: &Path) -> Result<(Vec<Check>, Value), String> {
    let dir = scratch.join("flaky");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{e}"))?;
    let counter = dir.join("count");
    std::fs::write(
        dir.join("test_flaky.py"),
        format!(
            "import pathlib\n\
             p = pathlib.Path({counter:?})\n\
             def test_steady():\n    assert True\n\
             def test_intelligibility_steady():\n    assert True\n\
             def test_sometimes():\n    n = int(p.read_text()) if p.exists() else 0\n    p.write_text(str(n + 1))\n    assert n % 2 == 0\n",
            counter = counter.display().to_string()
        ),
    )
    .map_err(|e| format!("{e}"))?;
    let runs = run_suite(&[&dir.display().to_string()], 2, &dir)?;
    Ok(judge(&runs))
}

pub struct Integration;

impl super::Gate for Integration {
    fn name(&self) -> &'static str {
        "integration"
    }
    fn run(&self, w: &[Waiver], args: &[String]) -> Result<bool, String> {
        gate_integration(w, args)
    }
    fn standalone(&self) -> bool {
        false
    }
    /// A test that fails every other run.
    fn plant(&self, scratch: &Path) -> Vec<Planted> {
        vec![match plant(scratch) {
            Ok((checks, m)) => planted(
                "a test that fails every other run",
                checks
                    .iter()
                    .any(|c| c.name == "flake_rate" && c.status == Status::Fail),
                format!("flake rate {}", m["flake_rate"]),
            ),
            Err(e) => planted("a test that fails every other run", false, e),
        }]
    }
}

/// `caws integration [--runs N]`: the e2e suite against the servers named by
/// KOKORO_URL, KOKORO_EDGE_URL and KOKORO_NN_URL (make caws-integration starts them).
fn gate_integration(w: &[Waiver], args: &[String]) -> Result<bool, String> {
    let mut g = Report::new("integration");
    let runs: usize = flag_values(args, "--runs")
        .first()
        .map_or(Ok(2), |v| v.parse())
        .map_err(|e| format!("--runs: {e}"))?;
    if runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    if std::env::var_os("KOKORO_URL").is_none() {
        g.checks.push(not_run(
            "e2e",
            "no running servers (KOKORO_URL unset; make caws-integration starts them)",
        ));
        return g.finish(w);
    }
    std::fs::create_dir_all(OUT).map_err(|e| format!("{OUT}: {e}"))?;
    let out = std::env::current_dir().unwrap_or_default().join(OUT);
    match run_suite(&["tests/e2e"], runs, &out) {
        Ok(results) => {
            let (checks, metrics) = judge(&results);
            g.checks = checks;
            g.metrics = metrics;
        }
        Err(e) => g.checks.push(check("e2e", false, e)),
    }
    g.finish(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(v: &[(&str, Outcome)]) -> Cases {
        v.iter().map(|(k, o)| (k.to_string(), *o)).collect()
    }

    #[test]
    fn steady_passing_runs_pass_with_zero_flake() {
        let r = cases(&[
            ("t::a", Outcome::Passed),
            ("t::test_intelligibility_x", Outcome::Passed),
            ("t::gpu", Outcome::Skipped),
        ]);
        let (checks, m) = judge(&[r.clone(), r]);
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:?}"
        );
        assert_eq!(m["flake_rate"], 0.0);
        assert_eq!(m["intelligibility"], "pass");
        assert_eq!(m["skipped"], 1);
    }

    #[test]
    fn a_flaky_test_fails_and_counts() {
        let a = cases(&[("t::a", Outcome::Passed), ("t::b", Outcome::Passed)]);
        let b = cases(&[("t::a", Outcome::Failed), ("t::b", Outcome::Passed)]);
        let (checks, m) = judge(&[a, b]);
        let status: Vec<_> = checks.iter().map(|c| c.status).collect();
        // e2e fails, flake fails, and no intelligibility test ran at all.
        assert_eq!(status, [Status::Fail; 3]);
        assert_eq!(m["flake_rate"], 0.5);
    }

    #[test]
    fn a_steady_failure_is_not_a_flake() {
        let a = cases(&[
            ("t::a", Outcome::Failed),
            ("t::intelligibility", Outcome::Failed),
        ]);
        let (checks, m) = judge(&[a.clone(), a]);
        assert_eq!(checks[0].status, Status::Fail);
        assert_eq!(checks[1].status, Status::Pass);
        assert_eq!(checks[2].status, Status::Fail);
        assert_eq!(m["flake_rate"], 0.0);
    }
}
