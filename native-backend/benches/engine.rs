//! Engine benchmark: raw ONNX Runtime vs our engine vs Python onnxruntime on the
//! same graph and phoneme tokens, plus time to first audio and RSS.
//!
//! Run with `make bench` (or `cargo bench -p kokoro-backend`). Measurements are
//! interleaved round by round so machine noise hits every contender alike; medians
//! are reported. Results also go to `target/bench-engine.json`.
//! Env: `BENCH_REPS` (default 7), `KOKORO_MODEL` to bench another model file,
//! `BENCH_DECODER` a decoder half to time beside the plain and fused ones.

use clap::Parser;
use http_body_util::BodyExt;
use kokoro_backend::config::ServeArgs;
use kokoro_backend::engine::model::OrtModel;
use kokoro_backend::http::{AppState, app};
use kokoro_backend::metrics::Metrics;
use kokoro_core::voice::VoiceBlend;
use kokoro_synth::pipeline::Input;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    serve: ServeArgs,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_mb() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

async fn ttfa(state: &AppState, text: &str) -> (f64, f64) {
    let body = serde_json::json!({"input": text, "response_format": "pcm"}).to_string();
    let req = axum::http::Request::post("/v1/audio/speech")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let t = Instant::now();
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut b = resp.into_body();
    let mut first = None;
    while let Some(f) = b.frame().await {
        if f.unwrap().data_ref().is_some_and(|d| !d.is_empty()) && first.is_none() {
            first = Some(t.elapsed().as_secs_f64());
        }
    }
    (first.unwrap_or(f64::NAN), t.elapsed().as_secs_f64())
}

fn main() {
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let cfg = Wrap::parse_from(["bench"])
        .serve
        .validate()
        .expect("assets (run `cargo xtask assets`)");
    let ecfg = cfg.engine.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = kokoro_backend::start_engine(&ecfg, 16, Arc::new(Metrics::default())).unwrap();
    let text = "The quick brown fox jumps over the lazy dog.";
    let ps = kokoro_synth::g2p::phonemize(text, kokoro_core::Lang::EnUs).unwrap();
    let (ids, _) = engine.vocab().encode_padded(&ps);
    let voice = VoiceBlend::single("af_heart");
    let style = engine.voices().style(&voice, ids.len() - 2).unwrap();
    // Bare ONNX Runtime on the whole graph (one session), against the engine,
    // which runs the encoder and decoder halves.
    let mut raw = OrtModel::load_unsplit(&ecfg).unwrap();
    raw.infer(&ids, &style, 1.0).unwrap();
    // The published int8 graph, for the speed-up of the derived (float conv) model.
    let int8_path = ecfg.model.with_file_name(kokoro_core::assets::MODEL_FILE);
    let mut int8 = (int8_path != ecfg.model && int8_path.is_file()).then(|| {
        let mut c = ecfg.clone();
        c.model = int8_path.clone();
        OrtModel::load(&c).unwrap()
    });

    // The decoder halves side by side: the plain one (pow/norm/conv2d rewrites, the
    // CUDA path's) and the fused-Snake CPU one the engine picks, same encoder.
    let (_, plain_dec) = kokoro_backend::engine::model::halves(&ecfg.model);
    let fused_dec = std::path::PathBuf::from(kokoro_core::assets::fused_decoder(
        &ecfg.model.to_string_lossy(),
    ));
    // BENCH_DECODER: one more decoder half to set beside them (a rewrite being tried).
    let alt_dec = std::path::PathBuf::from(std::env::var("BENCH_DECODER").unwrap_or_default());
    let mut decoders: Vec<(&str, OrtModel)> = [
        ("plain", &plain_dec),
        ("fused", &fused_dec),
        ("other", &alt_dec),
    ]
    .into_iter()
    .filter(|(_, p)| p.is_file())
    .map(|(k, p)| (k, OrtModel::load_with_decoder(&ecfg, Some(p)).unwrap()))
    .collect();
    let mut t_dec: Vec<Vec<f64>> = vec![Vec::new(); decoders.len()];

    let venv_python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/bench_ort.py");
    let voice_bin = ecfg.voices_dir.join("af_heart.bin");
    let tokens: Vec<String> = ids[1..ids.len() - 1]
        .iter()
        .map(|i| i.to_string())
        .collect();

    let (mut t_raw, mut t_engine, mut t_py, mut t_int8) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut samples = 0;
    let mut py_version = String::from("n/a");
    for _ in 0..reps {
        let t = Instant::now();
        samples = raw.infer(&ids, &style, 1.0).unwrap().len();
        t_raw.push(t.elapsed().as_secs_f64());
        if let Some(m) = int8.as_mut() {
            let t = Instant::now();
            m.infer(&ids, &style, 1.0).unwrap();
            t_int8.push(t.elapsed().as_secs_f64());
        }
        for ((_, m), ts) in decoders.iter_mut().zip(&mut t_dec) {
            let t = Instant::now();
            m.infer(&ids, &style, 1.0).unwrap();
            ts.push(t.elapsed().as_secs_f64());
        }
        let t = Instant::now();
        rt.block_on(engine.synthesize(
            Input::Phonemes(ps.clone()),
            kokoro_core::Lang::EnUs,
            &voice,
            1.0,
        ))
        .unwrap();
        t_engine.push(t.elapsed().as_secs_f64());
        let out = std::process::Command::new(venv_python)
            .args([
                script,
                &ecfg.model.display().to_string(),
                &voice_bin.display().to_string(),
            ])
            .arg(ecfg.intra_threads.to_string())
            .arg("1")
            .arg(tokens.join(","))
            .output();
        if let Some(o) = out.ok().filter(|o| o.status.success()) {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            t_py.push(v["times_s"][0].as_f64().unwrap());
            py_version = v["version"].as_str().unwrap_or("?").to_string();
        }
    }
    drop(raw);
    drop(int8);
    let dec_ms: Vec<(&str, f64)> = decoders
        .iter()
        .zip(&mut t_dec)
        .map(|((k, _), ts)| (*k, median(ts) * 1e3))
        .collect();
    drop(decoders);
    let m_int8 = if t_int8.is_empty() {
        f64::NAN
    } else {
        median(&mut t_int8)
    };
    let audio_s = samples as f64 / 24_000.0;
    let (m_raw, m_engine) = (median(&mut t_raw), median(&mut t_engine));
    let m_py = if t_py.is_empty() {
        f64::NAN
    } else {
        median(&mut t_py)
    };

    // Whole-text throughput: a paragraph through the engine (the split halves, one
    // window per call) against bare ONNX Runtime on the whole graph with the same
    // calls, interleaved.
    let paragraph = "Speech synthesis has come a long way. Early systems glued recorded fragments together, and they sounded robotic. \
        Neural models changed that: they learn prosody from data, so pauses and emphasis fall where a person would put them. \
        A small model like Kokoro can now run on an ordinary processor, faster than real time, which makes it practical for services at the edge.";
    let para_ps = kokoro_synth::g2p::phonemize(paragraph, kokoro_core::Lang::EnUs).unwrap();
    let calls: Vec<(Vec<i64>, Vec<f32>)> =
        kokoro_core::chunk::split_phonemes(&para_ps, kokoro_synth::IDS_PER_CALL)
            .into_iter()
            .map(|piece| {
                let (ids, _) = engine.vocab().encode_padded(piece);
                let style = engine.voices().style(&voice, ids.len() - 2).unwrap();
                (ids, style)
            })
            .collect();
    let mut raw = OrtModel::load_unsplit(&ecfg).unwrap();
    let (mut p_raw, mut p_engine, mut p_audio) = (Vec::new(), Vec::new(), 0usize);
    for _ in 0..reps.min(3) {
        let t = Instant::now();
        p_audio = calls
            .iter()
            .map(|(ids, style)| raw.infer(ids, style, 1.0).unwrap().len())
            .sum();
        p_raw.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        rt.block_on(engine.synthesize(
            Input::Phonemes(para_ps.clone()),
            kokoro_core::Lang::EnUs,
            &voice,
            1.0,
        ))
        .unwrap();
        p_engine.push(t.elapsed().as_secs_f64());
    }
    drop(raw);
    let p_audio_s = p_audio as f64 / 24_000.0;
    let (mp_raw, mp_engine) = (median(&mut p_raw), median(&mut p_engine));

    let state = AppState::new(engine.clone(), cfg);
    let sentence =
        "The quick brown fox jumps over the lazy dog, and then it runs far away into the forest.";
    let (mut s_first, mut p_first, mut p_total) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps.min(5) {
        s_first.push(rt.block_on(ttfa(&state, sentence)).0);
        let (f, t) = rt.block_on(ttfa(&state, paragraph));
        p_first.push(f);
        p_total.push(t);
    }
    let (rss, hwm) = rss_mb();
    println!(
        "\nengine bench (model {}, {} intra threads, {} reps, medians)",
        ecfg.model.display(),
        ecfg.intra_threads,
        reps
    );
    println!(
        "  tokens: {} phoneme ids -> {:.2} s of audio",
        ids.len() - 2,
        audio_s
    );
    println!(
        "  raw ONNX Runtime session      {:>8.1} ms  (RTF {:.3})",
        m_raw * 1e3,
        m_raw / audio_s
    );
    println!(
        "  published int8 graph          {:>8.1} ms  (served model is x{:.2} faster)",
        m_int8 * 1e3,
        m_int8 / m_raw
    );
    for (k, ms) in &dec_ms {
        println!(
            "  split, {k:<5} decoder         {:>8.1} ms  (x{:.2} the whole unrewritten graph's speed)",
            ms,
            m_raw * 1e3 / ms
        );
    }
    println!(
        "  engine end to end (queue+ort) {:>8.1} ms  (overhead x{:.3})",
        m_engine * 1e3,
        m_engine / m_raw
    );
    println!(
        "  Python onnxruntime {:<10} {:>8.1} ms  (ours is x{:.2} its speed)",
        py_version,
        m_py * 1e3,
        m_py / m_engine
    );
    println!(
        "  paragraph whole, {} calls: bare ORT {:.2} s (RTF {:.3}), engine {:.2} s (RTF {:.3}, x{:.3})",
        calls.len(),
        mp_raw,
        mp_raw / p_audio_s,
        mp_engine,
        mp_engine / p_audio_s,
        mp_engine / mp_raw
    );
    println!(
        "  TTFA 1 sentence (stream)      {:>8.1} ms",
        median(&mut s_first) * 1e3
    );
    println!(
        "  TTFA 1 paragraph (stream)     {:>8.1} ms  (total {:.2} s)",
        median(&mut p_first) * 1e3,
        median(&mut p_total)
    );
    println!("  RSS now {rss:.0} MB, peak {hwm:.0} MB (includes the extra raw sessions)");
    let json = serde_json::json!({
        "model": ecfg.model.display().to_string(), "intra_threads": ecfg.intra_threads, "reps": reps,
        "audio_s": audio_s, "raw_ort_ms": m_raw * 1e3, "engine_ms": m_engine * 1e3, "python_ort_ms": m_py * 1e3, "int8_graph_ms": m_int8 * 1e3,
        "decoders_ms": dec_ms.iter().map(|(k, v)| ((*k).to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "python_ort_version": py_version, "overhead_ratio": m_engine / m_raw, "speed_ratio_vs_python": m_py / m_engine,
        "ttfa_sentence_ms": median(&mut s_first) * 1e3, "ttfa_paragraph_ms": median(&mut p_first) * 1e3,
        "paragraph_raw_ort_s": mp_raw, "paragraph_engine_s": mp_engine, "paragraph_audio_s": p_audio_s,
        "paragraph_engine_over_raw": mp_engine / mp_raw,
        "rss_mb": rss, "peak_rss_mb": hwm,
    });
    let _ = std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"));
    let _ = std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-engine.json"),
        json.to_string(),
    );
}
