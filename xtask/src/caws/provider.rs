//! Provider contract tests: schemathesis generates requests from
//! `contracts/kokoro-tts-api.yaml` (examples, boundary coverage, fuzzing, stateful
//! links) against a running server and checks every response against the contract.
//!
//! All checks run except `positive_data_acceptance`: the API validates more than
//! JSON Schema can say (the voice must be installed, the language known, the text
//! speakable), so a schema-valid request may rightly get a 400/422.

use super::junit;
use super::{Check, check, not_run, run_cmd, tail};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

pub const CONTRACT: &str = "contracts/kokoro-tts-api.yaml";
const SCHEMATHESIS: &str = ".venv-caws/bin/schemathesis";

/// Run schemathesis against `url`; the JUnit report goes to `report`.
pub fn provider_check(name: &str, url: &str, report: &Path, examples: u32, seed: u64) -> Check {
    let check_name = format!("schemathesis_{name}");
    let bin = std::env::current_dir()
        .unwrap_or_default()
        .join(SCHEMATHESIS);
    if !bin.is_file() {
        return not_run(&check_name, "schemathesis not installed (make caws-tools)");
    }
    let contract = std::env::current_dir().unwrap_or_default().join(CONTRACT);
    let _ = std::fs::remove_file(report);
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg(&contract)
        .args(["--url", url, "--checks", "all"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", &seed.to_string()])
        .args(["--workers", "1", "--request-timeout", "120", "--no-color"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(report)
        // Its example database and report directory stay out of the tree.
        .args(["--generation-database", "none"])
        .current_dir(std::env::temp_dir());
    let (ok, out) = run_cmd(&mut cmd);
    let read = std::fs::read_to_string(report)
        .map_err(|e| format!("no JUnit report ({e})"))
        .and_then(|x| junit::parse(&x));
    match read {
        Ok(cases) => {
            let failed: Vec<&String> = cases
                .iter()
                .filter(|(_, o)| **o == junit::Outcome::Failed)
                .map(|(id, _)| id)
                .collect();
            let last = out
                .lines()
                .rev()
                .find(|l| l.contains(" in ") && l.contains('='))
                .unwrap_or("")
                .trim_matches(|c| c == '=' || c == ' ');
            // "650 generated, 650 passed": the line after "Test cases:".
            let cases_line = out
                .lines()
                .skip_while(|l| !l.starts_with("Test cases:"))
                .nth(1)
                .unwrap_or("")
                .trim();
            let summary = format!("{cases_line}; {last}");
            check(
                &check_name,
                ok && failed.is_empty(),
                if failed.is_empty() {
                    format!("{} operations: {summary}", cases.len())
                } else {
                    format!(
                        "{} of {} operations fail: {} ({summary})",
                        failed.len(),
                        cases.len(),
                        failed
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            )
        }
        Err(e) => check(&check_name, false, format!("{e}: {}", tail(&out))),
    }
}

/// A server that breaks the contract: every route answers 200 with a JSON body of
/// the wrong shape. For the selftest; serves until the process exits.
pub fn broken_server() -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("{e}"))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            // Read the head and as much body as Content-Length says.
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let body = r#"{"object":"list","data":"not a list","error":42}"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(format!("http://{addr}"))
}
