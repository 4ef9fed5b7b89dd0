//! `cargo xtask caws <gate>`: the CAWS v1.0 quality gates.
//!
//! Every gate runs the real tool, reads its real report and writes
//! `target/caws/<gate>.json`: `{gate, status, checks: [{name, status, detail}], metrics}`.
//! A check is `pass`, `fail`, `not_run` (tool missing or not configured: fails like
//! `fail`) or `waived` (a failure covered by an active waiver in
//! `.caws/waivers.yaml`). A gate fails when any check fails or did not run unwaived.
//!
//! `gates` runs them all, then writes `.agent/provenance.json` (validated against
//! `.caws/schemas/provenance.schema.json`) and prints the trust score:
//! coverage x0.25 + mutation x0.25 + contracts x0.2 + a11y x0.1 + perf x0.1 + flake x0.1,
//! coverage and mutation scored min(value / tier minimum, 1), a gate that did not run
//! scoring 0; any active waiver caps the score at 79. No figure is typed by hand.

mod advisories;
mod integration;
mod junit;
mod mutation;
mod provider;

use crate::schema;
use crate::waivers::{self, Waiver};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const SPEC: &str = ".caws/working-spec.yaml";
const SPEC_SCHEMA: &str = ".caws/schemas/working-spec.schema.json";
const PROV_SCHEMA: &str = ".caws/schemas/provenance.schema.json";
const POLICY: &str = ".caws/policy/tier-policy.json";
const WAIVERS: &str = ".caws/waivers.yaml";
const OUT: &str = "target/caws";

#[derive(Debug, Clone)]
struct Check {
    name: String,
    status: &'static str,
    detail: String,
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status: if ok { "pass" } else { "fail" },
        detail: detail.into(),
    }
}

fn not_run(name: &str, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status: "not_run",
        detail: detail.into(),
    }
}

struct Gate {
    name: &'static str,
    checks: Vec<Check>,
    metrics: Value,
}

impl Gate {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            checks: Vec::new(),
            metrics: json!({}),
        }
    }

    /// Apply waivers, write the result, return whether the gate passed.
    fn finish(mut self, waivers: &[Waiver]) -> Result<bool, String> {
        let day = waivers::today();
        let mut used = Vec::new();
        for c in &mut self.checks {
            if c.status != "pass"
                && let Some(w) = waivers::active(waivers, self.name, &c.name, day)
            {
                c.status = "waived";
                c.detail = format!("{} [waived by {}]", c.detail, w.id);
                used.push(w.id.clone());
            }
        }
        let passed = self
            .checks
            .iter()
            .all(|c| c.status == "pass" || c.status == "waived");
        let out = json!({
            "gate": self.name,
            "status": if passed { "pass" } else { "fail" },
            "checks": self.checks.iter().map(|c| json!({"name": c.name, "status": c.status, "detail": c.detail})).collect::<Vec<_>>(),
            "metrics": self.metrics,
            "waivers": used,
        });
        std::fs::create_dir_all(OUT).map_err(|e| format!("{OUT}: {e}"))?;
        let path = format!("{OUT}/{}.json", self.name);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&out).unwrap_or_default(),
        )
        .map_err(|e| format!("{path}: {e}"))?;
        println!(
            "caws {}: {}",
            self.name,
            if passed { "PASS" } else { "FAIL" }
        );
        for c in &self.checks {
            println!("  {:<8} {:<22} {}", c.status, c.name, c.detail);
        }
        Ok(passed)
    }
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

/// Schema plus the original validator's extra rules. Empty when valid.
pub fn spec_errors(spec: &Value, schema_v: &Value) -> Vec<String> {
    let mut errors = schema::validate(schema_v, spec);
    let tier = spec["risk_tier"].as_u64().unwrap_or(0);
    let contracts = spec["contracts"].as_array().map_or(0, Vec::len);
    let security = spec["non_functional"]["security"]
        .as_array()
        .map_or(0, Vec::len);
    if tier == 1 && (contracts == 0 || security == 0) {
        errors.push("tier 1 needs contracts and non_functional.security".into());
    }
    if tier == 2 {
        if !spec["non_functional"]["perf"].is_object() {
            errors.push("tier 2 needs non_functional.perf".into());
        }
        if spec["profile"] == "backend-api" && contracts == 0 {
            errors.push("tier 2 backend-api needs contracts".into());
        }
    }
    if spec["scope"]["in"].as_array().map_or(0, Vec::len) < 2 {
        errors.push("scope.in needs at least 2 items".into());
    }
    errors
}

fn gate_validate(w: &[Waiver]) -> Result<bool, String> {
    let mut g = Gate::new("validate");
    let spec = yaml(Path::new(SPEC))?;
    let errors = spec_errors(&spec, &json_file(Path::new(SPEC_SCHEMA))?);
    g.checks
        .push(check("working_spec", errors.is_empty(), errors.join("; ")));
    let missing: Vec<String> = spec["contracts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["path"].as_str())
        .filter(|p| !Path::new(p).is_file())
        .map(String::from)
        .collect();
    g.checks.push(check(
        "contract_files",
        missing.is_empty(),
        missing.join(", "),
    ));
    let policy = json_file(Path::new(POLICY))?;
    let tier = spec["risk_tier"].to_string();
    g.checks.push(check(
        "tier_policy",
        policy["tiers"][&tier].is_object(),
        format!("tier {tier}"),
    ));
    let wv = waivers::load(Path::new(WAIVERS));
    g.checks.push(check(
        "waivers",
        wv.is_ok(),
        wv.map_or_else(|e| e, |v| format!("{} waiver(s)", v.len())),
    ));
    g.finish(w)
}

fn gate_static(w: &[Waiver]) -> Result<bool, String> {
    let mut g = Gate::new("static");
    let (ok, out) = run("cargo", &["fmt", "--all", "--check"]);
    g.checks.push(check("fmt", ok, tail(&out)));
    let (ok, out) = run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    );
    g.checks.push(check("clippy", ok, tail(&out)));
    g.checks.push(secrets_check(Path::new(".")));
    // SAST: semgrep with our local rules, metrics off.
    let semgrep = ".venv-caws/bin/semgrep";
    if Path::new(semgrep).is_file() {
        let (ok, out) = run(
            semgrep,
            &[
                "scan",
                "--config",
                ".caws/semgrep.yml",
                "--metrics",
                "off",
                "--error",
                "--quiet",
                "--disable-version-check",
            ],
        );
        g.checks.push(check("semgrep", ok, tail(&out)));
    } else {
        g.checks.push(not_run(
            "semgrep",
            "semgrep not installed (make caws-tools)",
        ));
    }
    // Dependency policy.
    if available("cargo", &["deny", "--version"]) {
        let (ok, out) = run(
            "cargo",
            &[
                "deny",
                "--all-features",
                "check",
                "licenses",
                "bans",
                "sources",
            ],
        );
        g.checks.push(check("deny", ok, tail(&out)));
        g.checks.push(advisories::check_advisories());
    } else {
        g.checks.push(not_run("deny", "cargo-deny not installed"));
        g.checks
            .push(not_run("advisories", "cargo-deny not installed"));
    }
    g.finish(w)
}

/// detect-secrets over the tracked files of `root` against its committed baseline.
fn secrets_check(root: &Path) -> Check {
    let hook = std::env::current_dir()
        .unwrap_or_default()
        .join(".venv/bin/detect-secrets-hook");
    if !hook.is_file() {
        return not_run("secrets", "detect-secrets not installed (make pydeps)");
    }
    let files = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "--cached", "--others", "--exclude-standard"])
        .output();
    let files: Vec<String> = match files {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|f| !f.is_empty() && *f != ".secrets.baseline")
            .map(String::from)
            .collect(),
        _ => return not_run("secrets", "git ls-files failed"),
    };
    let out = Command::new(&hook)
        .current_dir(root)
        .arg("--baseline")
        .arg(".secrets.baseline")
        .args(&files)
        .output();
    match out {
        Ok(o) => check(
            "secrets",
            o.status.success(),
            if o.status.success() {
                format!("{} files, nothing new beyond the baseline", files.len())
            } else {
                tail(&String::from_utf8_lossy(&o.stdout))
            },
        ),
        Err(e) => not_run("secrets", format!("{e}")),
    }
}

fn gate_perf(w: &[Waiver], result: &Path) -> Result<bool, String> {
    let mut g = Gate::new("perf");
    match json_file(result) {
        Ok(r) => {
            for f in r["failures"].as_array().into_iter().flatten() {
                g.checks.push(check(
                    f["check"].as_str().unwrap_or("perf"),
                    false,
                    f["failure"].as_str().unwrap_or(""),
                ));
            }
            for f in r["waived"].as_array().into_iter().flatten() {
                g.checks.push(check(
                    f["check"].as_str().unwrap_or("perf"),
                    false,
                    f["failure"].as_str().unwrap_or(""),
                ));
            }
            let has_data = r["ttfa_ms"]["p95"].is_number() && r["api_short_ms"]["p95"].is_number();
            g.checks.push(check(
                "k6_summary",
                has_data && r["passed"].is_boolean(),
                format!("{}", result.display()),
            ));
            g.metrics = json!({
                "ttfa_p95_ms": r["ttfa_ms"]["p95"], "ttfa_med_ms": r["ttfa_ms"]["med"],
                "api_short_p95_ms": r["api_short_ms"]["p95"], "cache_hit_p95_ms": r["cache_hit_ms"]["p95"],
                "memory": r["memory"], "loudness": r["loudness"], "machine": r["machine"],
            });
        }
        Err(e) => g.checks.push(check(
            "k6_summary",
            false,
            format!("{e} (run make loadtest)"),
        )),
    }
    g.finish(w)
}

/// The value after `flag` in `args`, each time it appears.
fn flag_values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|p| p[0] == flag)
        .map(|p| p[1].as_str())
        .collect()
}

/// `caws contracts [--provider NAME=URL]... [--examples N] [--seed S]`: consumer side
/// (kokoro-core's validation, used by both tiers, against the contract), provider
/// side (schemathesis against each running server).
fn gate_contracts(w: &[Waiver], args: &[String]) -> Result<bool, String> {
    let mut g = Gate::new("contracts");
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

fn read_gate(name: &str) -> Option<Value> {
    json_file(&Path::new(OUT).join(format!("{name}.json"))).ok()
}

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

fn gate_provenance(w: &[Waiver]) -> Result<bool, String> {
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
    let gates = [
        "validate",
        "static",
        "unit",
        "mutation",
        "contracts",
        "integration",
        "perf",
    ];
    let results: Vec<(String, Option<Value>)> = gates
        .iter()
        .map(|g| (g.to_string(), read_gate(g)))
        .collect();
    let get = |name: &str| {
        results
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    };
    let passed = |name: &str| get(name).is_some_and(|v| v["status"] == "pass");
    let coverage = get("unit").and_then(|v| v["metrics"]["branch_coverage"].as_f64());
    let mutation = get("mutation").and_then(|v| v["metrics"]["mutation_score"].as_f64());
    let contract_check = |name: &str| {
        get("contracts").map(|v| {
            let checks = v["checks"].as_array().cloned().unwrap_or_default();
            let mine: Vec<&Value> = checks
                .iter()
                .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with(name)))
                .collect();
            !mine.is_empty() && mine.iter().all(|c| c["status"] == "pass")
        })
    };
    let consumer = contract_check("core_matches_contract");
    let provider = contract_check("schemathesis");
    let perf_ok = passed("perf");
    let a11y = get("integration").map(|v| v["metrics"]["intelligibility"] == "pass");
    let flake = get("integration").and_then(|v| v["metrics"]["flake_rate"].as_f64());
    let waived_ids: Vec<String> = results
        .iter()
        .filter_map(|(_, v)| v.as_ref())
        .flat_map(|v| v["waivers"].as_array().cloned().unwrap_or_default())
        .filter_map(|x| x.as_str().map(String::from))
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
    let artifacts: Vec<PathBuf> = gates
        .iter()
        .map(|g| Path::new(OUT).join(format!("{g}.json")))
        .chain([PathBuf::from("target/loadtest/result.json")])
        .filter(|p| p.is_file())
        .collect();
    let (_, commit) = run("git", &["rev-parse", "HEAD"]);
    let perf = get("perf").map_or(json!({}), |v| v["metrics"].clone());
    let prov = json!({
        "agent": std::env::var("CAWS_AGENT").unwrap_or_else(|_| "kokoro-edge xtask".into()),
        "model": std::env::var("CAWS_MODEL").unwrap_or_else(|_| "unknown".into()),
        "commit": commit.trim(),
        "artifacts": artifacts.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "results": {
            "coverage": {"metric": metric, "value": coverage},
            "mutation_score": mutation,
            "tests_passed": get("integration").map(|v| v["status"] == "pass"),
            "contracts": {"consumer": consumer, "provider": provider},
            "a11y": match a11y { Some(true) => "pass", Some(false) => "fail", None => "not_run" },
            "perf": perf,
            "flake_rate": flake,
        },
        "gates": results.iter().map(|(n, v)| (n.clone(), v.as_ref().map_or(json!("not_run"), |v| v["status"].clone()))).collect::<serde_json::Map<_, _>>(),
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
    let _ = w;
    Ok(gates.iter().all(|g| passed(g)))
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

/// Plant a defect per gate (in a scratch copy) and show the gate going red.
fn selftest() -> Result<bool, String> {
    let scratch = std::env::temp_dir().join(format!("caws-selftest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{e}"))?;
    let mut all = true;
    let mut report = |name: &str, red: bool, how: &str| {
        println!(
            "  {:<10} {} ({how})",
            name,
            if red { "went red" } else { "STAYED GREEN" }
        );
        all &= red;
    };
    // validate: a spec with a bad id and a one-item scope.
    let mut spec = yaml(Path::new(SPEC))?;
    spec["id"] = json!("kokoro-1");
    spec["scope"]["in"] = json!(["only one thing"]);
    let errs = spec_errors(&spec, &json_file(Path::new(SPEC_SCHEMA))?);
    report("validate", errs.len() >= 2, &errs.join("; "));
    // static: a planted secret in a scratch repository with an empty baseline.
    let repo = scratch.join("repo");
    std::fs::create_dir_all(&repo).map_err(|e| format!("{e}"))?;
    let (ok, out) = run("git", &["init", "-q", &repo.display().to_string()]);
    if !ok {
        return Err(out);
    }
    let hook = std::env::current_dir()
        .unwrap_or_default()
        .join(".venv/bin/detect-secrets");
    let baseline = Command::new(&hook)
        .current_dir(&repo)
        .arg("scan")
        .output()
        .map_err(|e| format!("detect-secrets: {e}"))?;
    std::fs::write(repo.join(".secrets.baseline"), &baseline.stdout).map_err(|e| format!("{e}"))?;
    // Assembled at run time so this source file does not itself hold a key.
    let planted = format!(
        "AWS_ACCESS_KEY_ID = \"{}{}\"\naws_secret = \"{}{}\"\n",
        "AKIA", "IOSFODNN7EXAMPLF", "wJalrXUtnFEMI/K7MDENG/", "bPxRfiCYzEXAMPLEKEY9"
    );
    std::fs::write(repo.join("config.py"), planted).map_err(|e| format!("{e}"))?;
    let c = secrets_check(&repo);
    report("secrets", c.status == "fail", &c.detail);
    // unit: a crate whose test takes one side of a branch only.
    if available("cargo", &["+nightly", "llvm-cov", "--version"]) {
        let krate = scratch_crate(
            &scratch,
            "uncovered",
            "pub fn sign(x: i32) -> i32 { if x < 0 { -1 } else if x == 0 { 0 } else { 1 } }\n\
             #[test] fn positive() { assert_eq!(sign(5), 1); }\n",
        )?;
        let (_, _, cov) = branch_coverage(&krate, &[], &scratch.join("cov.json"));
        match cov {
            Ok((v, n)) => report(
                "unit",
                v < 0.8,
                &format!("{:.0}% of {n} branches", v * 100.0),
            ),
            Err(e) => report("unit", false, &e),
        }
    } else {
        report(
            "unit",
            false,
            "cargo-llvm-cov or nightly missing: cannot plant",
        );
    }
    // mutation: a crate whose test checks too little.
    if mutation::installed() {
        match mutation::plant(&scratch) {
            Ok(score) => report(
                "mutation",
                score < 0.5,
                &format!("{:.0}% of planted mutants caught", score * 100.0),
            ),
            Err(e) => report("mutation", false, &e),
        }
    } else {
        report("mutation", false, "cargo-mutants missing: cannot plant");
    }
    // contracts: a server whose answers break the contract.
    let url = provider::broken_server()?;
    let c = provider::provider_check("broken", &url, &scratch.join("broken.xml"), 3, 1);
    report("contracts", c.status == "fail", &c.detail);
    // integration: a test that fails every other run.
    match integration::plant(&scratch) {
        Ok((checks, m)) => report(
            "flake",
            checks
                .iter()
                .any(|c| c.name == "flake_rate" && c.status == "fail"),
            &format!("flake rate {}", m["flake_rate"]),
        ),
        Err(e) => report("flake", false, &e),
    }
    // perf: a missing k6 summary, then a summary whose threshold failed.
    let r = gate_perf(&[], &scratch.join("missing.json"))?;
    report("perf", !r, "no k6 summary");
    let slow = scratch.join("slow.json");
    std::fs::write(
        &slow,
        json!({"passed": false, "ttfa_ms": {"p95": 9000.0}, "api_short_ms": {"p95": 9000.0},
               "failures": [{"check": "api_p95", "failure": "slow endpoint: p95 9000 ms > 1000 ms"}]})
        .to_string(),
    )
    .map_err(|e| format!("{e}"))?;
    let r = gate_perf(&[], &slow)?;
    report("perf", !r, "slow endpoint");
    let _ = std::fs::remove_dir_all(&scratch);
    // Gate results of the selftest are scratch: drop them.
    let _ = std::fs::remove_file(format!("{OUT}/perf.json"));
    Ok(all)
}

/// The crates whose tests the coverage gate measures: the pure logic both tiers
/// share (the model-backed crates are exercised by the integration and e2e suites).
const COVERED: [&str; 2] = ["kokoro-core", "kokoro-synth"];

/// Branch coverage with `cargo +nightly llvm-cov --branch`, read from its JSON export.
fn gate_unit(w: &[Waiver]) -> Result<bool, String> {
    let mut g = Gate::new("unit");
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

/// Run one gate by name, with its own arguments.
fn gate(name: &str, w: &[Waiver], args: &[String]) -> Result<bool, String> {
    match name {
        "validate" => gate_validate(w),
        "static" => gate_static(w),
        "contracts" => gate_contracts(w, args),
        "perf" => gate_perf(w, Path::new("target/loadtest/result.json")),
        "unit" => gate_unit(w),
        "mutation" => mutation::gate(w, args),
        "integration" => gate_integration(w, args),
        other => Err(format!("unknown caws gate {other}")),
    }
}

/// `caws integration [--runs N]`: the e2e suite against the servers named by
/// KOKORO_URL, KOKORO_EDGE_URL and KOKORO_NN_URL (make caws-integration starts them).
fn gate_integration(w: &[Waiver], args: &[String]) -> Result<bool, String> {
    let mut g = Gate::new("integration");
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
    match integration::run_suite(&["tests/e2e"], runs, &out) {
        Ok(results) => {
            let (checks, metrics) = integration::judge(&results);
            g.checks = checks;
            g.metrics = metrics;
        }
        Err(e) => g.checks.push(check("e2e", false, e)),
    }
    g.finish(w)
}

pub fn main(args: &[String]) -> Result<(), String> {
    let w = waivers::load(Path::new(WAIVERS))?;
    let which = args.first().map_or("gates", String::as_str);
    let rest = args.get(1..).unwrap_or_default();
    let ok = match which {
        // Every gate that needs no running server, then provenance over all results
        // (contracts and integration are read from their last run).
        "gates" => {
            let mut ok = true;
            for g in ["validate", "static", "perf", "unit", "mutation"] {
                ok &= gate(g, &w, &[])?;
            }
            gate_provenance(&w)? && ok
        }
        "provenance" => gate_provenance(&w)?,
        "selftest" => {
            println!("caws selftest: planting one defect per gate");
            selftest()?
        }
        other => gate(other, &w, rest)?,
    };
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

    #[test]
    fn the_project_spec_is_valid_and_a_broken_one_is_not() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let spec = yaml(&root.join(SPEC)).unwrap();
        let schema_v = json_file(&root.join(SPEC_SCHEMA)).unwrap();
        assert_eq!(spec_errors(&spec, &schema_v), Vec::<String>::new());
        let mut bad = spec.clone();
        bad["risk_tier"] = json!(2);
        bad["contracts"] = json!([]);
        bad["acceptance"][0]["id"] = json!("X1");
        let e = spec_errors(&bad, &schema_v);
        assert!(
            e.iter().any(|x| x.contains("backend-api needs contracts")),
            "{e:?}"
        );
        assert!(e.iter().any(|x| x.contains("does not match ^A")), "{e:?}");
    }
}
