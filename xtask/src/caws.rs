//! `cargo xtask caws <gate>`: the CAWS v1.0 quality gates.
//!
//! Every gate is a [`Gate`] in [`REGISTRY`], one file each under `caws/`: it runs
//! the real tool, reads its real report and writes `target/caws/<gate>.json`, a
//! [`Report`]: `{gate, status, checks: [{name, status, detail}], metrics, waivers}`.
//! A check's [`Status`] is `pass`, `fail`, `not_run` (tool missing or not
//! configured: fails like `fail`) or `waived` (a failure covered by an active
//! waiver in `.caws/waivers.yaml`). A gate fails when any check fails or did not
//! run unwaived. Each gate also plants its own defect for the selftest
//! ([`Gate::plant`]), which shows every gate going red.
//!
//! `gates` runs them all, then `provenance` writes `.agent/provenance.json`
//! (validated against `.caws/schemas/provenance.schema.json`) from the typed
//! reports and prints the trust score (see `provenance.rs`).

mod advisories;
mod contracts;
mod integration;
mod junit;
mod mutation;
mod perf;
mod provenance;
mod provider;
mod static_checks;
mod unit;
mod validate;

use crate::waivers::{self, Waiver};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const SPEC: &str = ".caws/working-spec.yaml";
const SPEC_SCHEMA: &str = ".caws/schemas/working-spec.schema.json";
const PROV_SCHEMA: &str = ".caws/schemas/provenance.schema.json";
const POLICY: &str = ".caws/policy/tier-policy.json";
const WAIVERS: &str = ".caws/waivers.yaml";
const OUT: &str = "target/caws";

/// The outcome of a check, and of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    NotRun,
    Waived,
}

impl Status {
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotRun => "not_run",
            Status::Waived => "waived",
        }
    }

    /// Whether the gate may pass with this check.
    pub const fn is_ok(self) -> bool {
        matches!(self, Status::Pass | Status::Waived)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status: if ok { Status::Pass } else { Status::Fail },
        detail: detail.into(),
    }
}

fn not_run(name: &str, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status: Status::NotRun,
        detail: detail.into(),
    }
}

/// A gate's result as written to `target/caws/<gate>.json` and read back by
/// provenance. `metrics` holds the gate's figures (typed readers below).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub gate: String,
    pub status: Status,
    pub checks: Vec<Check>,
    #[serde(default)]
    pub metrics: Value,
    #[serde(default)]
    pub waivers: Vec<String>,
}

impl Report {
    fn new(name: &str) -> Self {
        Self {
            gate: name.to_string(),
            status: Status::NotRun,
            checks: Vec::new(),
            metrics: json!({}),
            waivers: Vec::new(),
        }
    }

    /// A metric as a number.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.metrics[key].as_f64()
    }

    /// Whether every check whose name starts with `prefix` passed (None: no such check).
    pub fn checks_pass(&self, prefix: &str) -> Option<bool> {
        let mine: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| c.name.starts_with(prefix))
            .collect();
        (!mine.is_empty()).then(|| mine.iter().all(|c| c.status == Status::Pass))
    }

    /// Apply waivers, decide the status, write the report; returns whether it passed.
    fn finish(mut self, waivers: &[Waiver]) -> Result<bool, String> {
        let day = waivers::today();
        for c in &mut self.checks {
            if c.status != Status::Pass
                && let Some(w) = waivers::active(waivers, &self.gate, &c.name, day)
            {
                c.status = Status::Waived;
                c.detail = format!("{} [waived by {}]", c.detail, w.id);
                self.waivers.push(w.id.clone());
            }
        }
        let passed = self.checks.iter().all(|c| c.status.is_ok());
        self.status = if passed { Status::Pass } else { Status::Fail };
        std::fs::create_dir_all(OUT).map_err(|e| format!("{OUT}: {e}"))?;
        let path = format!("{OUT}/{}.json", self.gate);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&self).unwrap_or_default(),
        )
        .map_err(|e| format!("{path}: {e}"))?;
        println!(
            "caws {}: {}",
            self.gate,
            if passed { "PASS" } else { "FAIL" }
        );
        for c in &self.checks {
            println!("  {:<8} {:<22} {}", c.status.as_str(), c.name, c.detail);
        }
        Ok(passed)
    }
}

/// The last report a gate wrote, if any.
fn read_report(name: &str) -> Option<Report> {
    let text = std::fs::read_to_string(Path::new(OUT).join(format!("{name}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// One planted defect of the selftest: what was planted, whether the gate went
/// red on it, and what it said.
pub struct Planted {
    pub what: &'static str,
    pub red: bool,
    pub detail: String,
}

fn planted(what: &'static str, red: bool, detail: impl Into<String>) -> Planted {
    Planted {
        what,
        red,
        detail: detail.into(),
    }
}

/// A quality gate.
pub trait Gate: Sync {
    fn name(&self) -> &'static str;
    /// Run the gate with its own arguments and write its report.
    fn run(&self, waivers: &[Waiver], args: &[String]) -> Result<bool, String>;
    /// Plant this gate's defects in `scratch` and judge them as the gate would.
    fn plant(&self, scratch: &Path) -> Vec<Planted>;
    /// Whether `caws gates` runs it (gates that need running servers are run by
    /// their make targets and read from their last report).
    fn standalone(&self) -> bool {
        true
    }
}

/// Every gate, in the order `caws gates` and provenance list them.
pub static REGISTRY: [&dyn Gate; 7] = [
    &validate::Validate,
    &static_checks::Static,
    &unit::Unit,
    &mutation::Mutation,
    &contracts::Contracts,
    &integration::Integration,
    &perf::Perf,
];

fn find(name: &str) -> Option<&'static dyn Gate> {
    REGISTRY.iter().copied().find(|g| g.name() == name)
}

/// Run a command; (success, combined output).
fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let mut c = Command::new(cmd);
    c.args(args);
    run_cmd(&mut c)
}

fn run_cmd(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("cannot run {:?}: {e}", cmd.get_program())),
    }
}

fn available(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

fn yaml(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn json_file(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The value after `flag` in `args`, each time it appears.
fn flag_values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|p| p[0] == flag)
        .map(|p| p[1].as_str())
        .collect()
}

/// A one-file crate `name` under `scratch` (its own workspace), for the selftest.
fn scratch_crate(scratch: &Path, name: &str, lib_rs: &str) -> Result<PathBuf, String> {
    let krate = scratch.join(name);
    std::fs::create_dir_all(krate.join("src")).map_err(|e| format!("{e}"))?;
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n"
        ),
    )
    .map_err(|e| format!("{e}"))?;
    std::fs::write(krate.join("src/lib.rs"), lib_rs).map_err(|e| format!("{e}"))?;
    Ok(krate)
}

/// Plant every gate's defects in a scratch folder and show each gate going red.
fn selftest() -> Result<bool, String> {
    let scratch = std::env::temp_dir().join(format!("caws-selftest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{e}"))?;
    let mut all = true;
    for g in REGISTRY {
        let started = std::time::Instant::now();
        let plants = g.plant(&scratch);
        println!(
            "  {:<11} planted in {} s",
            g.name(),
            started.elapsed().as_secs()
        );
        if plants.is_empty() {
            println!("  {:<11} PLANTS NOTHING", g.name());
            all = false;
        }
        for p in plants {
            println!(
                "  {:<11} {} ({}: {})",
                g.name(),
                if p.red { "went red" } else { "STAYED GREEN" },
                p.what,
                p.detail
            );
            all &= p.red;
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    // Gate results of the selftest are scratch: drop them.
    let _ = std::fs::remove_file(format!("{OUT}/perf.json"));
    Ok(all)
}

pub fn main(args: &[String]) -> Result<(), String> {
    let w = waivers::load(Path::new(WAIVERS))?;
    let which = args.first().map_or("gates", String::as_str);
    let rest = args.get(1..).unwrap_or_default();
    let started = std::time::Instant::now();
    let ok = match which {
        // Every gate that needs no running server, then provenance over all results
        // (contracts and integration are read from their last run).
        "gates" => {
            let mut ok = true;
            for g in REGISTRY.iter().filter(|g| g.standalone()) {
                ok &= g.run(&w, &[])?;
            }
            provenance::write()? && ok
        }
        "provenance" => provenance::write()?,
        "selftest" => {
            println!("caws selftest: planting defects in every gate");
            selftest()?
        }
        other => find(other)
            .ok_or_else(|| format!("unknown caws gate {other}"))?
            .run(&w, rest)?,
    };
    println!("caws {which}: {} s", started.elapsed().as_secs());
    if ok {
        Ok(())
    } else {
        Err(format!("caws {which}: failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gate_is_registered_once_and_reports_round_trip() {
        let mut names: Vec<_> = REGISTRY.iter().map(|g| g.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
        assert!(find("perf").is_some() && find("nope").is_none());
        let mut r = Report::new("x");
        r.checks.push(check("a_one", true, ""));
        r.checks.push(not_run("b", ""));
        r.metrics = json!({"score": 0.5});
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.number("score"), Some(0.5));
        assert_eq!(back.checks_pass("a_"), Some(true));
        assert_eq!(back.checks_pass("b"), Some(false));
        assert_eq!(back.checks_pass("c"), None);
        assert_eq!(
            serde_json::to_string(&Status::NotRun).unwrap(),
            "\"not_run\""
        );
    }
}
