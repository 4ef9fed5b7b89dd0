//! `cargo deny check advisories` offline, against a RustSec snapshot.
//!
//! This machine reaches the package registries only, so the advisory database
//! comes as plain files (`../shared/rustsec-advisory-db`, or the folder named by
//! `KOKORO_ADVISORY_SNAPSHOT`). cargo-deny opens its database as a git repository
//! at `<db-path>/advisory-db-3157b0e258782691` (the folder name it derives from the
//! default `db-urls`), so we build that repository from the snapshot's files, with
//! one commit dated at the snapshot's own commit date (so cargo-deny measures the
//! data's real age), and run cargo-deny with fetching disabled. The result names
//! the snapshot's commit and date.

use super::{Check, check, not_run, run_cmd, tail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `deny.toml` points cargo-deny (`db-path`), via `KOKORO_ADVISORY_DBS`.
pub const DBS: &str = "target/caws/advisory-dbs";
/// The folder cargo-deny derives from the default RustSec `db-urls`.
const DB_FOLDER: &str = "advisory-db-3157b0e258782691";
/// Marks a repository we built, with the snapshot commit it holds.
const STAMP: &str = ".kokoro-snapshot";

/// A snapshot folder and what its SNAPSHOT.md says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub dir: PathBuf,
    /// The upstream commit the files were taken from.
    pub commit: String,
    /// Its commit date (RFC 3339), used as our commit's date.
    pub date: String,
}

/// The snapshot to use: `KOKORO_ADVISORY_SNAPSHOT`, else `../shared/rustsec-advisory-db`.
pub fn locate() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KOKORO_ADVISORY_SNAPSHOT") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from("../shared/rustsec-advisory-db");
    p.join("SNAPSHOT.md").is_file().then_some(p)
}

/// Read the upstream commit and its date from the snapshot's SNAPSHOT.md.
pub fn describe(dir: &Path) -> Result<Snapshot, String> {
    let path = dir.join("SNAPSHOT.md");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_snapshot(dir, &text)
}

fn parse_snapshot(dir: &Path, text: &str) -> Result<Snapshot, String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let commit = words
        .iter()
        .find(|w| w.len() == 40 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("SNAPSHOT.md names no 40-digit commit")?;
    let date = words
        .windows(2)
        .find(|w| w[0] == "committed")
        .map(|w| w[1].trim_end_matches('.'))
        .filter(|d| d.len() >= 20 && d.as_bytes()[4] == b'-' && d.contains('T'))
        .ok_or("SNAPSHOT.md gives no commit date ('committed <RFC 3339 date>')")?;
    Ok(Snapshot {
        dir: dir.to_path_buf(),
        commit: (*commit).to_string(),
        date: date.to_string(),
    })
}

fn git(dir: &Path, args: &[&str], date: Option<&str>) -> Result<(), String> {
    let mut c = Command::new("git");
    c.arg("-C").arg(dir).args(args);
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "kokoro-edge xtask")
        .env("GIT_AUTHOR_EMAIL", "xtask@kokoro-edge.invalid")
        .env("GIT_COMMITTER_NAME", "kokoro-edge xtask")
        .env("GIT_COMMITTER_EMAIL", "xtask@kokoro-edge.invalid");
    if let Some(d) = date {
        c.env("GIT_AUTHOR_DATE", d).env("GIT_COMMITTER_DATE", d);
    }
    let (ok, out) = run_cmd(&mut c);
    if ok {
        Ok(())
    } else {
        Err(format!("git {}: {}", args.join(" "), tail(&out)))
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<usize, String> {
    let mut files = 0;
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type().map_err(|e| e.to_string())?;
        if ty.is_dir() {
            files += copy_tree(&src, &dst)?;
        } else if ty.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
            files += 1;
        }
    }
    Ok(files)
}

/// Build (or reuse) the git repository cargo-deny opens under `dbs`.
pub fn prepare(snap: &Snapshot, dbs: &Path) -> Result<PathBuf, String> {
    let repo = dbs.join(DB_FOLDER);
    if std::fs::read_to_string(repo.join(".git").join(STAMP)).is_ok_and(|s| s == snap.commit) {
        return Ok(repo);
    }
    if repo.exists() {
        std::fs::remove_dir_all(&repo).map_err(|e| format!("{}: {e}", repo.display()))?;
    }
    for part in ["crates", "rust"] {
        let from = snap.dir.join(part);
        if !from.is_dir() {
            return Err(format!("snapshot has no {part}/ folder"));
        }
        copy_tree(&from, &repo.join(part))?;
    }
    for f in ["support.toml", "LICENSE.txt"] {
        if snap.dir.join(f).is_file() {
            std::fs::copy(snap.dir.join(f), repo.join(f)).map_err(|e| format!("{f}: {e}"))?;
        }
    }
    git(&repo, &["init", "-q", "-b", "main"], None)?;
    git(&repo, &["add", "-A"], None)?;
    let msg = format!("RustSec advisory-db snapshot of {}", snap.commit);
    git(
        &repo,
        &["commit", "-q", "--no-gpg-sign", "-m", &msg],
        Some(&snap.date),
    )?;
    std::fs::write(repo.join(".git").join(STAMP), &snap.commit)
        .map_err(|e| format!("stamp: {e}"))?;
    Ok(repo)
}

/// The `advisories` check of the static gate.
pub fn check_advisories() -> Check {
    let Some(dir) = locate() else {
        return not_run(
            "advisories",
            "no advisory snapshot (../shared/rustsec-advisory-db or KOKORO_ADVISORY_SNAPSHOT)",
        );
    };
    let snap = match describe(&dir) {
        Ok(s) => s,
        Err(e) => return not_run("advisories", e),
    };
    let dbs = std::env::current_dir().unwrap_or_default().join(DBS);
    if let Err(e) = prepare(&snap, &dbs) {
        return not_run("advisories", format!("cannot build the database: {e}"));
    }
    let mut c = Command::new("cargo");
    c.args(["deny", "--offline", "check", "advisories"])
        .env("KOKORO_ADVISORY_DBS", &dbs);
    let (ok, out) = run_cmd(&mut c);
    let short = &snap.commit[..12];
    let age = crate::waivers::parse_date(&snap.date[..10]).map_or_else(
        || "age unknown".into(),
        |d| format!("{} days old", crate::waivers::today() - d),
    );
    check(
        "advisories",
        ok,
        format!(
            "RustSec snapshot {short} of {} ({age}, offline): {}",
            snap.date,
            tail(&out)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_snapshot_note() {
        // A made-up commit id (a real one reads as a secret to detect-secrets).
        let id = "0123456789".repeat(4);
        let text = format!(
            "- Source: the public repo, commit\n  {id} (committed 2026-08-21T08:28:40+02:00).\n"
        );
        let s = parse_snapshot(Path::new("x"), &text).unwrap();
        assert_eq!(s.commit, id);
        assert_eq!(s.date, "2026-08-21T08:28:40+02:00");
        assert!(parse_snapshot(Path::new("x"), "no commit here").is_err());
        let undated = format!("commit {id} somewhere");
        assert!(parse_snapshot(Path::new("x"), &undated).is_err());
    }

    #[test]
    fn builds_a_repository_dated_like_the_snapshot() {
        let root = std::env::temp_dir().join(format!("kokoro-adv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let snap_dir = root.join("snap");
        std::fs::create_dir_all(snap_dir.join("crates/foo")).unwrap();
        std::fs::create_dir_all(snap_dir.join("rust")).unwrap();
        std::fs::write(snap_dir.join("crates/foo/RUSTSEC-0000-0000.md"), "x").unwrap();
        let snap = Snapshot {
            dir: snap_dir,
            commit: "ab".repeat(20),
            date: "2026-08-21T08:28:40+02:00".into(),
        };
        let repo = prepare(&snap, &root.join("dbs")).unwrap();
        assert!(repo.ends_with(DB_FOLDER));
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["log", "-1", "--format=%cI %s", "--name-only"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(log.starts_with("2026-08-21T08:28:40+02:00 "), "{log}");
        assert!(log.contains("crates/foo/RUSTSEC-0000-0000.md"), "{log}");
        // A second call reuses the repository; a new snapshot commit rebuilds it.
        assert_eq!(prepare(&snap, &root.join("dbs")).unwrap(), repo);
        let newer = Snapshot {
            commit: "cd".repeat(20),
            ..snap
        };
        prepare(&newer, &root.join("dbs")).unwrap();
        let stamp = std::fs::read_to_string(repo.join(".git").join(STAMP)).unwrap();
        assert_eq!(stamp, "cd".repeat(20));
        let _ = std::fs::remove_dir_all(&root);
    }
}
