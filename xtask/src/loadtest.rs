//! `cargo xtask loadtest`: the k6 perf gate.
//!
//! Reads the budgets from `.caws/working-spec.yaml`, runs `loadtest/gate.js` (TTFA,
//! short and paragraph latency, mixed formats through the edge, cache hits) and
//! `loadtest/ramp.js` once per concurrency level, samples the servers' RSS from
//! /proc while k6 runs, measures the loudness of sample outputs, prints a table and
//! writes `target/loadtest/result.json`. Fails when k6 fails a threshold, when an
//! export is missing or unreadable, when steady memory is over budget, or when
//! loudness is off target. Targets must be loopback.
//!
//! With `--soak SECS`, runs the ramp script at `--soak-vus` streams for that long
//! instead and checks zero errors and RSS drift under 5%.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Options {
    backend: String,
    edge: String,
    pids: Vec<(String, u32)>,
    k6: PathBuf,
    out: PathBuf,
    iterations: u32,
    levels: Vec<u32>,
    soak: Option<u64>,
    soak_vus: u32,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            backend: "http://127.0.0.1:8880".into(),
            edge: "http://127.0.0.1:3000".into(),
            pids: Vec::new(),
            k6: PathBuf::from(".venv/bin/k6"),
            out: PathBuf::from("target/loadtest"),
            iterations: 20,
            levels: vec![1, 2, 4, 8],
            soak: None,
            soak_vus: 2,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--backend" => o.backend = val()?,
                "--edge" => o.edge = val()?,
                "--k6" => o.k6 = val()?.into(),
                "--out" => o.out = val()?.into(),
                "--iterations" => o.iterations = val()?.parse().map_err(|e| format!("{e}"))?,
                "--levels" => {
                    o.levels = val()?
                        .split(',')
                        .map(|l| l.trim().parse().map_err(|e| format!("--levels: {e}")))
                        .collect::<Result<_, _>>()?;
                }
                "--soak" => o.soak = Some(val()?.parse().map_err(|e| format!("{e}"))?),
                "--soak-vus" => o.soak_vus = val()?.parse().map_err(|e| format!("{e}"))?,
                "--pid" => {
                    let v = val()?;
                    let (name, pid) = v.split_once('=').ok_or("--pid NAME=PID")?;
                    let pid = pid.trim().parse().map_err(|e| format!("--pid {v}: {e}"))?;
                    o.pids.push((name.to_string(), pid));
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        for u in [&o.backend, &o.edge] {
            if !is_loopback(u) {
                return Err(format!("{u}: load tests target loopback only"));
            }
        }
        Ok(o)
    }
}

fn is_loopback(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or("");
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// The perf budgets of the working spec.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    pub ttfa_ms: f64,
    pub api_p95_ms: f64,
    pub memory_mb: f64,
    pub cache_hit_ms: f64,
    pub lufs_target: f64,
    pub lufs_tolerance: f64,
    pub dbtp_ceiling: f64,
}

pub fn budgets(spec: &Path) -> Result<Budgets, String> {
    let text = std::fs::read_to_string(spec)
        .map_err(|e| format!("cannot read {}: {e}", spec.display()))?;
    let v: Value = serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", spec.display()))?;
    let perf = &v["non_functional"]["perf"];
    let num = |k: &str| {
        perf[k].as_f64().ok_or(format!(
            "{}: non_functional.perf.{k} missing",
            spec.display()
        ))
    };
    Ok(Budgets {
        ttfa_ms: num("streaming_ttfa_ms")?,
        api_p95_ms: num("api_p95_ms")?,
        memory_mb: num("memory_limit_mb")?,
        cache_hit_ms: num("cache_hit_p95_ms")?,
        lufs_target: num("lufs_target")?,
        lufs_tolerance: num("lufs_tolerance")?,
        dbtp_ceiling: num("dbtp_ceiling")?,
    })
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// RSS samples of the servers every 200 ms while `f` runs.
fn sampled<T>(pids: &[(String, u32)], f: impl FnOnce() -> T) -> (T, Vec<Vec<u64>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(vec![Vec::new(); pids.len()]));
    let handle = {
        let (stop, samples) = (stop.clone(), samples.clone());
        let pids: Vec<u32> = pids.iter().map(|(_, p)| *p).collect();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                {
                    let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
                    for (i, p) in pids.iter().enumerate() {
                        if let Some(kb) = rss_kb(*p) {
                            s[i].push(kb);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let r = f();
    stop.store(true, Ordering::Relaxed);
    let _ = handle.join();
    let s = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (r, s)
}

/// Run one k6 script; returns (exit ok, summary export, wall seconds).
fn k6(
    o: &Options,
    script: &str,
    env: &[(&str, String)],
    tag: &str,
) -> Result<(bool, Value, f64), String> {
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let summary = o.out.join(format!("{tag}.json"));
    let _ = std::fs::remove_file(&summary);
    let mut cmd = Command::new(&o.k6);
    cmd.arg("run")
        .arg("--quiet")
        .arg("--no-usage-report")
        .arg("--summary-export")
        .arg(&summary)
        .arg(script);
    for (k, v) in env {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    let t = Instant::now();
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run {} (make pydeps installs it): {e}",
            o.k6.display()
        )
    })?;
    let wall = t.elapsed().as_secs_f64();
    std::fs::write(
        o.out.join(format!("{tag}.log")),
        [out.stdout, out.stderr].concat(),
    )
    .map_err(|e| format!("{e}"))?;
    let text = std::fs::read_to_string(&summary).map_err(|e| {
        format!(
            "k6 {script} wrote no summary ({e}); see {}/{tag}.log",
            o.out.display()
        )
    })?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: unreadable summary: {e}", summary.display()))?;
    Ok((out.status.success(), v, wall))
}

fn metric(summary: &Value, name: &str, stat: &str) -> Option<f64> {
    summary["metrics"][name][stat].as_f64()
}

/// Integrated loudness (LUFS) and true peak (dBTP) of 16-bit mono 24 kHz WAV bytes.
pub fn loudness_of_wav(wav: &[u8]) -> Result<(f64, f64), String> {
    if wav.len() < 44 || &wav[..4] != b"RIFF" || &wav[36..40] != b"data" {
        return Err("not a canonical WAV".into());
    }
    let samples: Vec<f32> = wav[44..]
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let mut m = ebur128::EbuR128::new(
        1,
        kokoro_core::SAMPLE_RATE,
        ebur128::Mode::I | ebur128::Mode::TRUE_PEAK,
    )
    .map_err(|e| format!("{e:?}"))?;
    m.add_frames_f32(&samples).map_err(|e| format!("{e:?}"))?;
    let lufs = m.loudness_global().map_err(|e| format!("{e:?}"))?;
    let peak = m.true_peak(0).map_err(|e| format!("{e:?}"))?;
    Ok((lufs, 20.0 * peak.max(1e-9).log10()))
}

fn fetch_wav(base: &str, text: &str, out: &Path) -> Result<Vec<u8>, String> {
    let body =
        json!({"input": text, "voice": "af_heart", "response_format": "wav", "stream": false});
    let status = Command::new("curl")
        .args(["-sf", "-o"])
        .arg(out)
        .args(["-H", "content-type: application/json", "-d"])
        .arg(body.to_string())
        .arg(format!("{base}/v1/audio/speech"))
        .status()
        .map_err(|e| format!("curl: {e}"))?;
    if !status.success() {
        return Err(format!("curl {base} failed: {status}"));
    }
    std::fs::read(out).map_err(|e| format!("{e}"))
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

pub fn run(o: &Options) -> Result<(), String> {
    let b = budgets(Path::new(".caws/working-spec.yaml"))?;
    // (check id, message): ids are what `.caws/waivers.yaml` may waive (gate "perf").
    let mut failures: Vec<(String, String)> = Vec::new();
    let start_rss: Vec<u64> = o
        .pids
        .iter()
        .map(|(_, p)| rss_kb(*p).unwrap_or(0))
        .collect();
    if let Some(secs) = o.soak {
        return soak(o, secs, &b);
    }
    let env = vec![
        ("BACKEND_URL", o.backend.clone()),
        ("EDGE_URL", o.edge.clone()),
        ("TTFA_P95_MS", b.ttfa_ms.to_string()),
        ("API_P95_MS", b.api_p95_ms.to_string()),
        ("CACHE_HIT_P95_MS", b.cache_hit_ms.to_string()),
        ("ITERATIONS", o.iterations.to_string()),
    ];
    // Each scenario in its own k6 run; the gated metric must have samples.
    let mut gate = json!({"metrics": {}});
    let mut samples = vec![Vec::new(); o.pids.len()];
    for (scenario, gated) in [
        ("ttfa", "ttfa_ms"),
        ("short", "api_short_ms"),
        ("paragraph", "api_paragraph_ms"),
        ("formats", "http_reqs"),
        ("cache_hit", "cache_hit_ms"),
    ] {
        let mut env = env.clone();
        env.push(("SCENARIO", scenario.to_string()));
        let (r, s) = sampled(&o.pids, || k6(o, "loadtest/gate.js", &env, scenario));
        for (all, more) in samples.iter_mut().zip(s) {
            all.extend(more);
        }
        let (ok, v, _) = r?;
        let crossed = crossed_thresholds(&v);
        for m in &crossed {
            let check = match m.as_str() {
                "ttfa_ms" => "ttfa_p95",
                "api_short_ms" => "api_p95",
                "cache_hit_ms" => "cache_hit_p95",
                _ => "errors",
            };
            failures.push((
                check.to_string(),
                format!(
                    "k6 {scenario}: threshold on {m} crossed (see {}/{scenario}.log)",
                    o.out.display()
                ),
            ));
        }
        if !ok && crossed.is_empty() {
            failures.push((
                "errors".into(),
                format!(
                    "k6 {scenario} failed (see {}/{scenario}.log)",
                    o.out.display()
                ),
            ));
        }
        let count = metric(&v, gated, "count").unwrap_or(0.0);
        if count < 1.0 {
            failures.push((
                "samples".into(),
                format!("k6 {scenario}: no samples of {gated}"),
            ));
        }
        if let (Some(all), Some(m)) = (gate["metrics"].as_object_mut(), v["metrics"].as_object()) {
            for (k, val) in m {
                if k != "http_reqs" && k != "http_req_failed" && k != "checks" {
                    all.insert(k.clone(), val.clone());
                }
            }
            all.insert(
                format!("http_req_failed_{scenario}"),
                v["metrics"]["http_req_failed"].clone(),
            );
        }
    }
    let mut ramp = Vec::new();
    for &vus in &o.levels {
        let env = vec![
            ("BACKEND_URL", o.backend.clone()),
            ("VUS", vus.to_string()),
            ("ITERATIONS", "2".to_string()),
        ];
        let (r, s) = sampled(&o.pids, || {
            k6(o, "loadtest/ramp.js", &env, &format!("ramp-{vus}"))
        });
        for (all, more) in samples.iter_mut().zip(s) {
            all.extend(more);
        }
        let (ok, v, wall) = r?;
        if !ok {
            failures.push((
                "errors".into(),
                format!("ramp at {vus} streams had failures"),
            ));
        }
        let audio = metric(&v, "audio_seconds", "count").ok_or("ramp: no audio_seconds")?;
        let dur = v["state"]["testRunDurationMs"]
            .as_f64()
            .map_or(wall, |ms| ms / 1000.0);
        ramp.push(json!({
            "streams": vus,
            "audio_s_per_s": audio / dur,
            "ttfa_p95_ms": metric(&v, "ttfa_ms", "p(95)"),
            "ttfa_med_ms": metric(&v, "ttfa_ms", "med"),
        }));
    }
    // Steady state: after the load, once the servers have had 3 s to go idle.
    std::thread::sleep(Duration::from_secs(3));
    let mut memory = serde_json::Map::new();
    for (i, (name, pid)) in o.pids.iter().enumerate() {
        let steady = rss_kb(*pid).ok_or(format!("{name} (pid {pid}) is gone"))?;
        let peak = samples[i].iter().copied().max().unwrap_or(steady);
        if mb(steady) > b.memory_mb {
            let msg = format!(
                "{name}: steady RSS {:.0} MB > {} MB",
                mb(steady),
                b.memory_mb
            );
            failures.push(("memory".into(), msg));
        }
        memory.insert(
            name.clone(),
            json!({"start_mb": mb(start_rss[i]), "peak_mb": mb(peak), "steady_mb": mb(steady)}),
        );
    }
    let mut loud = Vec::new();
    for (i, (base, text)) in [
        (&o.backend, "The quick brown fox jumps over the lazy dog."),
        (
            &o.backend,
            "Whisper it quietly, then say it out loud: the meeting starts at nine.",
        ),
        (&o.edge, "Loudness is measured on the edge's answer too."),
    ]
    .into_iter()
    .enumerate()
    {
        let wav = fetch_wav(base, text, &o.out.join(format!("sample-{i}.wav")))?;
        let (lufs, dbtp) = loudness_of_wav(&wav)?;
        if (lufs - b.lufs_target).abs() > b.lufs_tolerance || dbtp > b.dbtp_ceiling {
            let msg = format!("sample {i}: {lufs:.2} LUFS / {dbtp:.2} dBTP off target");
            failures.push(("loudness".into(), msg));
        }
        loud.push(json!({"url": base, "lufs": lufs, "dbtp": dbtp}));
    }
    let waivers = crate::waivers::load(Path::new(".caws/waivers.yaml"))?;
    let day = crate::waivers::today();
    let mut waived = Vec::new();
    let mut failing = Vec::new();
    for (check, msg) in failures {
        match crate::waivers::active(&waivers, "perf", &check, day) {
            Some(w) => waived.push(
                json!({"check": check, "failure": msg, "waiver": w.id, "expires_day": w.expires}),
            ),
            None => failing.push(json!({"check": check, "failure": msg})),
        }
    }
    let result = json!({
        "machine": machine(),
        "pace": decoder_pace(&o.backend),
        "budgets": {"ttfa_p95_ms": b.ttfa_ms, "api_p95_ms": b.api_p95_ms, "memory_mb": b.memory_mb,
                    "cache_hit_p95_ms": b.cache_hit_ms},
        "ttfa_ms": {"med": metric(&gate, "ttfa_ms", "med"), "p95": metric(&gate, "ttfa_ms", "p(95)")},
        "api_short_ms": {"med": metric(&gate, "api_short_ms", "med"), "p95": metric(&gate, "api_short_ms", "p(95)")},
        "api_paragraph_ms": {"med": metric(&gate, "api_paragraph_ms", "med"), "p95": metric(&gate, "api_paragraph_ms", "p(95)")},
        "paragraph_rtf_med": metric(&gate, "paragraph_rtf", "med"),
        "cache_hit_ms": {"med": metric(&gate, "cache_hit_ms", "med"), "p95": metric(&gate, "cache_hit_ms", "p(95)")},
        "ramp": ramp,
        "memory": memory,
        "loudness": loud,
        "failures": failing,
        "waived": waived,
        "passed": failing.is_empty(),
    });
    let path = o.out.join("result.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&result).unwrap_or_default(),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    print_table(&result);
    if failing.is_empty() {
        Ok(())
    } else {
        let msgs: Vec<&str> = failing
            .iter()
            .filter_map(|f| f["failure"].as_str())
            .collect();
        Err(format!("perf gate failed: {}", msgs.join("; ")))
    }
}

/// Metrics whose thresholds k6 reports as crossed in a summary export.
fn crossed_thresholds(summary: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (name, m) in summary["metrics"].as_object().into_iter().flatten() {
        if m["thresholds"]
            .as_object()
            .is_some_and(|t| t.values().any(|crossed| crossed == true))
        {
            out.push(name.clone());
        }
    }
    out
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':').map(|(_, m)| m.trim().to_string()))
    };
    let model = field("model name").unwrap_or_else(|| "unknown cpu".into());
    let isa = isa(&field("flags").unwrap_or_default());
    format!("{cpus} cpus, {model}, {isa}")
}

/// The widest instruction level among those ONNX Runtime's CPU kernels dispatch
/// on (CPUs with one model name differ here, and so do their speed and bits).
fn isa(flags: &str) -> &'static str {
    let have: std::collections::HashSet<&str> = flags.split_whitespace().collect();
    let levels: [(&str, &[&str]); 5] = [
        ("amx", &["amx_tile", "amx_int8"]),
        ("avx512-vnni", &["avx512f", "avx512bw", "avx512_vnni"]),
        ("avx512", &["avx512f", "avx512bw"]),
        ("avx-vnni", &["avx2", "avx_vnni"]),
        ("avx2", &["avx2", "fma"]),
    ];
    levels
        .into_iter()
        .find(|(_, need)| need.iter().all(|f| have.contains(f)))
        .map_or("baseline", |(name, _)| name)
}

/// A gauge's value in Prometheus text (`name value` on its own line).
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The backend's decoder pace (its fastest decode so far, read after the load)
/// and the pace its streamed windows keep up with, from its /metrics.
fn decoder_pace(base: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10"])
        .arg(format!("{base}/metrics"))
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    json!({
        "decoder": gauge(&text, "kokoro_decoder_pace_ratio"),
        "windows_safe": gauge(&text, "kokoro_stream_windows_safe_pace_ratio"),
    })
}

fn f(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.1}"))
}

/// What the machine's decoder pace says about the figures below (CI machines of
/// one name have differed 2x in speed).
fn pace_line(p: &Value) -> Option<String> {
    let pace = p["decoder"].as_f64().filter(|x| *x > 0.0)?;
    let mut line = format!(
        "decoder pace (fastest decode): {:.0}% of real time per frame",
        100.0 * pace
    );
    if let Some(safe) = p["windows_safe"].as_f64().filter(|x| *x > 0.0) {
        line += &format!(
            " (streamed windows keep a player fed up to {:.0}%",
            100.0 * safe
        );
        line += if pace > safe {
            "; slower here: streamed players may stall)"
        } else {
            ")"
        };
    }
    Some(line)
}

fn print_table(r: &Value) {
    println!("\nperf gate ({})", r["machine"].as_str().unwrap_or(""));
    if let Some(line) = pace_line(&r["pace"]) {
        println!("  {line}");
    }
    println!(
        "  {:<34} {:>10} {:>10} {:>10}",
        "metric", "median", "p95", "budget"
    );
    let rows = [
        (
            "TTFA, streamed sentence (ms)",
            &r["ttfa_ms"],
            &r["budgets"]["ttfa_p95_ms"],
        ),
        (
            "short, not streamed (ms)",
            &r["api_short_ms"],
            &r["budgets"]["api_p95_ms"],
        ),
        (
            "paragraph, not streamed (ms)",
            &r["api_paragraph_ms"],
            &Value::Null,
        ),
        (
            "edge cache hit (ms)",
            &r["cache_hit_ms"],
            &r["budgets"]["cache_hit_p95_ms"],
        ),
    ];
    for (name, v, budget) in rows {
        println!(
            "  {:<34} {:>10} {:>10} {:>10}",
            name,
            f(&v["med"]),
            f(&v["p95"]),
            f(budget)
        );
    }
    println!(
        "  paragraph real-time factor (median): {}",
        f(&r["paragraph_rtf_med"])
    );
    for l in r["ramp"].as_array().into_iter().flatten() {
        println!(
            "  {} streams: {} audio-s/s, TTFA median {} ms",
            l["streams"],
            f(&l["audio_s_per_s"]),
            f(&l["ttfa_med_ms"])
        );
    }
    if let Some(m) = r["memory"].as_object() {
        for (name, v) in m {
            println!(
                "  {name} RSS: start {} MB, peak {} MB, steady {} MB",
                f(&v["start_mb"]),
                f(&v["peak_mb"]),
                f(&v["steady_mb"])
            );
        }
    }
    for l in r["loudness"].as_array().into_iter().flatten() {
        println!(
            "  loudness {}: {} LUFS, {} dBTP",
            l["url"].as_str().unwrap_or(""),
            f(&l["lufs"]),
            f(&l["dbtp"])
        );
    }
    for w in r["waived"].as_array().into_iter().flatten() {
        println!(
            "  WAIVED ({}): {}",
            w["waiver"].as_str().unwrap_or(""),
            w["failure"].as_str().unwrap_or("")
        );
    }
    for w in r["failures"].as_array().into_iter().flatten() {
        println!("  FAILED: {}", w["failure"].as_str().unwrap_or(""));
    }
    println!(
        "  result: {}",
        if r["passed"] == true { "PASS" } else { "FAIL" }
    );
}

/// The soak's RSS ceiling per process.
const SOAK_PEAK_MB: f64 = 600.0;

/// A bounded soak: `vus` streams for `secs` seconds beside one client of costly and
/// malformed requests (each must get its error); zero failed requests, RSS peak
/// under [`SOAK_PEAK_MB`] and drift < 5% between the first and the last quarter.
fn soak(o: &Options, secs: u64, _b: &Budgets) -> Result<(), String> {
    let env = vec![
        ("BACKEND_URL", o.backend.clone()),
        ("VUS", o.soak_vus.to_string()),
        ("DURATION", format!("{secs}s")),
        ("ABUSE", "1".to_string()),
    ];
    let (r, samples) = sampled(&o.pids, || k6(o, "loadtest/ramp.js", &env, "soak"));
    let (ok, v, wall) = r?;
    let mut failures = Vec::new();
    if !ok {
        failures.push("soak had failed requests".to_string());
    }
    let mut report = Vec::new();
    for (i, (name, _)) in o.pids.iter().enumerate() {
        let s = &samples[i];
        if s.len() < 8 {
            failures.push(format!("{name}: too few RSS samples"));
            continue;
        }
        let q = s.len() / 4;
        let mean = |x: &[u64]| x.iter().sum::<u64>() as f64 / x.len() as f64;
        let (first, last) = (mean(&s[..q]), mean(&s[s.len() - q..]));
        let drift = (last - first) / first;
        if drift > 0.05 {
            failures.push(format!("{name}: RSS drift {:.1}%", drift * 100.0));
        }
        let peak = s.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
        if peak > SOAK_PEAK_MB {
            failures.push(format!(
                "{name}: RSS peak {peak:.0} MB over {SOAK_PEAK_MB} MB"
            ));
        }
        report.push(json!({"name": name, "first_quarter_mb": first / 1024.0, "last_quarter_mb": last / 1024.0, "drift": drift, "peak_mb": peak}));
    }
    let result = json!({
        "machine": machine(),
        "pace": decoder_pace(&o.backend), "wall_s": wall, "streams": o.soak_vus,
        "requests": metric(&v, "http_reqs", "count"),
        "audio_seconds": metric(&v, "audio_seconds", "count"),
        "failed_rate": metric(&v, "http_req_failed", "value"),
        "memory": report, "failures": failures,
    });
    let path = o.out.join("soak.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&result).unwrap_or_default(),
    )
    .map_err(|e| format!("{e}"))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&result).unwrap_or_default()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("soak failed: {}", failures.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossed_thresholds_are_read_from_the_export() {
        let v = json!({"metrics": {
            "ttfa_ms": {"p(95)": 590.0, "thresholds": {"p(95)<=500": true}},
            "api_short_ms": {"p(95)": 600.0, "thresholds": {"p(95)<=1000": false}},
            "http_reqs": {"count": 20.0}
        }});
        assert_eq!(crossed_thresholds(&v), vec!["ttfa_ms".to_string()]);
        assert!(crossed_thresholds(&json!({})).is_empty());
    }

    #[test]
    fn loopback_only() {
        assert!(is_loopback("http://127.0.0.1:8880"));
        assert!(is_loopback("http://localhost:3000"));
        assert!(!is_loopback("http://example.com:80"));
        assert!(!is_loopback("https://10.0.0.1:80"));
    }

    #[test]
    fn budgets_come_from_the_working_spec() {
        let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.caws/working-spec.yaml");
        let b = budgets(&spec).unwrap();
        assert!(b.ttfa_ms > 0.0 && b.api_p95_ms > 0.0 && b.memory_mb > 0.0);
        let dir = std::env::temp_dir().join(format!("xtask-budget-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("spec.yaml"),
            "non_functional:\n  perf:\n    api_p95_ms: 5\n",
        )
        .unwrap();
        assert!(
            budgets(&dir.join("spec.yaml"))
                .unwrap_err()
                .contains("streaming_ttfa_ms")
        );
    }

    #[test]
    fn the_machine_line_names_its_instruction_level_and_pace() {
        assert_eq!(isa("fpu sse2 avx fma avx2"), "avx2");
        assert_eq!(isa("avx2 fma avx512f avx512bw avx512_vnni"), "avx512-vnni");
        assert_eq!(isa("avx2 fma avx512f avx512bw"), "avx512");
        assert_eq!(isa("avx2 fma avx_vnni"), "avx-vnni");
        assert_eq!(isa("amx_tile amx_int8 avx512f"), "amx");
        assert_eq!(isa("sse2"), "baseline");
        let m = "# TYPE kokoro_decoder_pace_ratio gauge\nkokoro_decoder_pace_ratio 0.262\n\
                 kokoro_decoder_pace_ratio_x 9\nkokoro_stream_windows_safe_pace_ratio 0.273\n";
        assert_eq!(gauge(m, "kokoro_decoder_pace_ratio"), Some(0.262));
        assert_eq!(gauge(m, "kokoro_missing"), None);
        let ok = json!({"decoder": 0.262, "windows_safe": 0.273});
        assert_eq!(
            pace_line(&ok).as_deref(),
            Some(
                "decoder pace (fastest decode): 26% of real time per frame (streamed windows keep a player fed up to 27%)"
            )
        );
        let slow = json!({"decoder": 0.42, "windows_safe": 0.273});
        assert!(
            pace_line(&slow)
                .unwrap()
                .ends_with("slower here: streamed players may stall)")
        );
        assert_eq!(pace_line(&json!({"decoder": null})), None);
        assert_eq!(
            pace_line(&json!({"decoder": 0.3, "windows_safe": 0.0})).unwrap(),
            "decoder pace (fastest decode): 30% of real time per frame"
        );
    }

    #[test]
    fn loudness_meter_reads_our_wavs() {
        let n = 48_000;
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        wav.resize(36, 0);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&((n * 2) as u32).to_le_bytes());
        for i in 0..n {
            let x = 0.1 * (i as f32 * 1000.0 * std::f32::consts::TAU / 24_000.0).sin();
            wav.extend_from_slice(&((x * 32767.0) as i16).to_le_bytes());
        }
        let (lufs, dbtp) = loudness_of_wav(&wav).unwrap();
        assert!((lufs - -23.0).abs() < 1.0, "{lufs}");
        assert!((dbtp - -20.0).abs() < 0.5, "{dbtp}");
        assert!(loudness_of_wav(b"nope").is_err());
    }
}
