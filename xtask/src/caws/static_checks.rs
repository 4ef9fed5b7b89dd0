//! The static gate: `cargo fmt --check`, `clippy -D warnings`, detect-secrets
//! against `.secrets.baseline`, semgrep (local rules, metrics off), `cargo deny`
//! (licenses, bans, sources) and the advisories check offline (`advisories.rs`).

use super::{
    Check, Planted, Report, Status, advisories, available, check, not_run, planted, run, tail,
};
use crate::waivers::Waiver;
use std::path::Path;
use std::process::Command;

pub struct Static;

impl super::Gate for Static {
    fn name(&self) -> &'static str {
        "static"
    }
    fn run(&self, w: &[Waiver], _args: &[String]) -> Result<bool, String> {
        gate_static(w)
    }
    /// A planted secret in a scratch repository with an empty baseline.
    fn plant(&self, scratch: &Path) -> Vec<Planted> {
        vec![match plant_secret(scratch) {
            Ok(c) => planted("a committed AWS key", c.status == Status::Fail, c.detail),
            Err(e) => planted("a committed AWS key", false, e),
        }]
    }
}

fn plant_secret(scratch: &Path) -> Result<Check, String> {
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
    Ok(secrets_check(&repo))
}

fn gate_static(w: &[Waiver]) -> Result<bool, String> {
    let mut g = Report::new("static");
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
