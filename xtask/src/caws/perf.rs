//! The perf gate: reads `target/loadtest/result.json`, which `make loadtest` (the
//! k6 gate, `xtask/src/loadtest.rs`) writes; missing or unreadable fails.

use super::{Planted, Report, check, json_file, planted};
use crate::waivers::Waiver;
use serde_json::json;
use std::path::Path;

pub struct Perf;

impl super::Gate for Perf {
    fn name(&self) -> &'static str {
        "perf"
    }
    fn run(&self, w: &[Waiver], _args: &[String]) -> Result<bool, String> {
        gate_perf(w, Path::new("target/loadtest/result.json"))
    }
    /// A missing k6 summary, then a summary whose threshold failed.
    fn plant(&self, scratch: &Path) -> Vec<Planted> {
        let missing = gate_perf(&[], &scratch.join("missing.json"));
        let slow = scratch.join("slow.json");
        let slow_result = std::fs::write(
            &slow,
            json!({"passed": false, "ttfa_ms": {"p95": 9000.0}, "api_short_ms": {"p95": 9000.0},
                   "failures": [{"check": "api_p95", "failure": "slow endpoint: p95 9000 ms > 1000 ms"}]})
            .to_string(),
        )
        .map_err(|e| format!("{e}"))
        .and_then(|()| gate_perf(&[], &slow));
        let judge = |what, r: Result<bool, String>| match r {
            Ok(passed) => planted(what, !passed, if passed { "passed" } else { "failed" }),
            Err(e) => planted(what, false, e),
        };
        vec![
            judge("no k6 summary", missing),
            judge("a slow endpoint", slow_result),
        ]
    }
}

pub fn gate_perf(w: &[Waiver], result: &Path) -> Result<bool, String> {
    let mut g = Report::new("perf");
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
