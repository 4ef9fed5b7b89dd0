//! Integration tests: the real router, the real model, through `oneshot`: what
//! needs Kokoro-82M itself (audio, loudness, timing, cancellation, the int8
//! regressions). The HTTP contract (every status, error code and header) is
//! tested over a fake model in `routes.rs`.
//!
//! One engine (real Kokoro-82M via ONNX Runtime, assets from `cargo xtask assets`)
//! is shared by every test in this binary.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use http_body_util::BodyExt;
use kokoro_backend::config::ServeArgs;
use kokoro_backend::engine::Engine;
use kokoro_backend::http::{AppState, app};
use kokoro_backend::metrics::Metrics;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

mod common;
use common::{assert_error, post_json, send};

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    serve: ServeArgs,
}

fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cfg = Wrap::parse_from(["test"])
                .serve
                .validate()
                .expect("assets present (run `cargo xtask assets`)");
            kokoro_backend::start_engine(&cfg.engine, 64, Arc::new(Metrics::default()))
                .expect("engine starts")
        })
        .clone()
}

fn state_with(args: &[&str]) -> AppState {
    let mut argv = vec!["test", "--dev-routes"];
    argv.extend_from_slice(args);
    let cfg = Wrap::parse_from(argv).serve.validate().unwrap();
    AppState::new(engine(), cfg)
}

async fn speech(state: &AppState, body: Value) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    send(state, post_json("/v1/audio/speech", body.to_string())).await
}

#[tokio::test]
async fn info_routes() {
    let s = state_with(&[]);
    let get = |p: &str| {
        Request::get(p)
            .header("x-request-id", "trace-me-1")
            .body(Body::empty())
            .unwrap()
    };
    let (st, h, b) = send(&s, get("/v1/models")).await;
    assert_eq!(st, 200);
    assert_eq!(h["x-request-id"], "trace-me-1");
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 4);
    let (_, _, b) = send(&s, get("/v1/audio/voices")).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(v["voices"].as_array().unwrap().len() >= 28);
    assert_eq!(v["aliases"]["alloy"], "af_alloy");
    let (_, _, b) = send(&s, get("/status")).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["device"], "cpu");
    assert!(v["queue"]["capacity"].as_u64().unwrap() > 0);
    let (_, _, b) = send(
        &s,
        post_json("/dev/phonemize", json!({"text": "Hello 2 you"}).to_string()),
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(v["phonemes"].as_str().unwrap().contains("tˈu"), "{v}");
    assert!(v["tokens"].as_array().unwrap().len() > 5);
    assert_eq!(v["words"][0]["source"], "lexicon", "{v}");
}

/// Decode with symphonia (mp3, flac, wav, aac) or libopus (opus); returns samples.
fn decoded_samples(format: &str, bytes: &[u8]) -> usize {
    if format == "pcm" {
        return bytes.len() / 2;
    }
    if format == "opus" {
        let mut r = ogg::PacketReader::new(std::io::Cursor::new(bytes.to_vec()));
        let mut dec = opus::Decoder::new(24_000, opus::Channels::Mono).unwrap();
        let mut out = vec![0f32; 5760];
        let (mut n, mut i, mut pre_skip) = (0usize, 0, 0usize);
        while let Some(p) = r.read_packet().unwrap() {
            if i == 0 {
                assert!(p.data.starts_with(b"OpusHead"));
                pre_skip = u16::from_le_bytes([p.data[10], p.data[11]]) as usize / 2;
            } else if i > 1 {
                n += dec.decode_float(&p.data, &mut out, false).unwrap();
            }
            i += 1;
        }
        return n.saturating_sub(pre_skip);
    }
    use symphonia::core::{
        codecs::DecoderOptions, formats::FormatOptions, io::MediaSourceStream,
        meta::MetadataOptions, probe::Hint,
    };
    let mss = MediaSourceStream::new(
        Box::new(std::io::Cursor::new(bytes.to_vec())),
        Default::default(),
    );
    let mut hint = Hint::new();
    hint.with_extension(format);
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{format}: not decodable: {e}"));
    let mut fmt = probed.format;
    let track = fmt.default_track().unwrap();
    assert_eq!(track.codec_params.sample_rate, Some(24_000), "{format}");
    let mut dec = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .unwrap();
    let id = track.id;
    let mut n = 0;
    while let Ok(p) = fmt.next_packet() {
        if p.track_id() == id {
            n += dec
                .decode(&p)
                .unwrap_or_else(|e| panic!("{format}: {e}"))
                .frames();
        }
    }
    n
}

#[tokio::test]
async fn every_format_decodes_to_the_expected_duration_and_loudness() {
    let s = state_with(&[]);
    let text = "Testing every format, one two three.";
    let (st, h, wav) = speech(
        &s,
        json!({"input": text, "response_format": "wav", "stream": false}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(h[header::CONTENT_TYPE], "audio/wav");
    assert_eq!(
        u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize,
        wav.len() - 44
    );
    let samples: Vec<f32> = wav[44..]
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let expect = samples.len();
    assert!(expect > 24_000, "at least a second of audio, got {expect}");
    let duration_ms: usize = h["x-audio-duration-ms"].to_str().unwrap().parse().unwrap();
    assert!(duration_ms.abs_diff(expect * 1000 / 24_000) <= 1);
    let (lufs, tp) = kokoro_synth::loudness::measure(&samples).unwrap();
    assert!((lufs + 16.0).abs() <= 1.0, "{lufs} LUFS");
    assert!(tp <= -1.0, "{tp} dBTP");
    // A streamed request is decoded in windows (the same frames, cross-faded), so
    // it lasts what the whole one does, within 3%; each mode is compared with
    // the wav of the same mode.
    let (_, _, streamed_wav) = speech(
        &s,
        json!({"input": text, "response_format": "wav", "stream": true}),
    )
    .await;
    let expect_streamed = (streamed_wav.len() - 44) / 2;
    assert!(
        expect_streamed.abs_diff(expect) * 100 <= 3 * expect,
        "streamed {expect_streamed} vs whole {expect} samples"
    );
    for format in ["mp3", "opus", "aac", "flac", "wav", "pcm"] {
        for stream in [false, true] {
            let expect = if stream { expect_streamed } else { expect };
            let (st, h, bytes) = speech(
                &s,
                json!({"input": text, "response_format": format, "stream": stream}),
            )
            .await;
            assert_eq!(st, 200, "{format}");
            assert!(
                h[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("audio/")
            );
            let n = decoded_samples(format, &bytes);
            // Codec frames pad the end (mp3 ~1152, aac ~3x1024 + priming, opus 20 ms).
            let slack = 24_000 / 4;
            assert!(
                n + 200 >= expect && n <= expect + slack,
                "{format} stream={stream}: {n} samples vs {expect}"
            );
        }
    }
}

#[tokio::test]
async fn streaming_sends_chunks_as_they_are_ready() {
    let s = state_with(&[]);
    let body = json!({"input": "First a short sentence. Then a much longer second sentence follows it, with a clause or two.", "response_format": "wav"});
    let resp = app(s.clone())
        .oneshot(post_json("/v1/audio/speech", body.to_string()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-time-to-first-audio-ms"));
    let mut body = resp.into_body();
    let mut frames = Vec::new();
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            frames.push(d);
        }
    }
    assert!(
        frames.len() >= 3,
        "header+first chunk, later chunks, tail: {}",
        frames.len()
    );
    assert_eq!(&frames[0][..4], b"RIFF");
    assert_eq!(
        &frames[0][40..44],
        &[0xff; 4],
        "streaming WAV has unknown size"
    );
    assert!(
        frames[0].len() > 44 + 4800,
        "first frame carries real audio"
    );

    let (st, h, b) = speech(
        &s,
        json!({"input": "Server sent events.", "stream_format": "sse", "response_format": "pcm"}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(h[header::CONTENT_TYPE], "text/event-stream");
    let text = String::from_utf8(b).unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(events.len() >= 2);
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["type"] == "speech.audio.delta" && e["audio"].is_string())
    );
    assert_eq!(events.last().unwrap()["type"], "speech.audio.done");
}

#[tokio::test]
async fn full_queue_answers_429_and_disconnects_cancel() {
    let s = state_with(&["--queue-capacity", "1"]);
    let long = "This sentence keeps the only slot busy for a while. ".repeat(6);
    let resp = app(s.clone())
        .oneshot(post_json(
            "/v1/audio/speech",
            json!({"input": long, "response_format": "pcm"}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (st, h, b) = speech(&s, json!({"input": "second"})).await;
    assert_error(st, &b, 429, "queue_full", None);
    assert!(h.contains_key(header::RETRY_AFTER));
    // Read one frame, then hang up: the pipeline must stop and free the slot.
    let mut body = resp.into_body();
    let _ = body.frame().await;
    let before = s.metrics.chunks.load(std::sync::atomic::Ordering::Relaxed);
    drop(body);
    let mut freed = false;
    for _ in 0..600 {
        if s.admission.available_permits() == 1 {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(freed, "slot not released after disconnect");
    let after = s.metrics.chunks.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        after - before <= 2,
        "synthesis went on after the client left ({} chunks)",
        after - before
    );
    let m = s.metrics.render();
    assert!(
        m.contains("kokoro_client_disconnects_total 1")
            || m.contains("kokoro_cancelled_jobs_total 1"),
        "{m}"
    );
}

/// Regression: the published int8 graph's convolutions return near-silence plus a
/// spike (or NaN) for some inputs; the served model must not.
#[tokio::test]
async fn model_output_is_sane_for_inputs_that_broke_int8() {
    let e = engine();
    let voice = kokoro_core::voice::parse_voice("af_heart").unwrap();
    for text in [
        "Please call me tomorrow",
        "We met on March third,",
        "Please call me tomorrow morning.",
    ] {
        let s = e
            .synthesize(
                kokoro_synth::pipeline::Input::Text(text.into()),
                kokoro_core::Lang::EnUs,
                &voice,
                1.0,
            )
            .await
            .unwrap();
        let body = &s.audio[48..];
        let rms =
            (body.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / body.len() as f64).sqrt();
        let peak = body.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(rms > 0.02, "{text}: near-silent output (rms {rms})");
        assert!(peak < 1.5, "{text}: spike in output (peak {peak})");
    }
}

#[tokio::test]
async fn inline_phonemes_and_pauses_are_honoured() {
    let s = state_with(&[]);
    let dur = |h: &axum::http::HeaderMap| -> u64 {
        h["x-audio-duration-ms"].to_str().unwrap().parse().unwrap()
    };
    let (st, plain, _) = speech(
        &s,
        json!({"input": "Say Kokoro.", "response_format": "pcm", "stream": false}),
    )
    .await;
    assert_eq!(st, 200);
    let (_, inline, _) = speech(
        &s,
        json!({"input": "Say [Kokoro](/kˈOkəɹO/).", "response_format": "pcm", "stream": false}),
    )
    .await;
    let (_, bare, _) = speech(
        &s,
        json!({"input": "Say.", "response_format": "pcm", "stream": false}),
    )
    .await;
    // misaki does not know "Kokoro": the fallback speaks it, and inline IPA too.
    for (what, h) in [("fallback", &plain), ("inline", &inline)] {
        assert!(
            dur(h) > dur(&bare) + 200,
            "{what}: {} vs {}",
            dur(h),
            dur(&bare)
        );
    }
    let (_, paused, _) = speech(
        &s,
        json!({"input": "Say [pause:1.5s] Kokoro.", "response_format": "pcm", "stream": false}),
    )
    .await;
    assert!(
        dur(&paused) >= dur(&plain) + 1400,
        "{} vs {}",
        dur(&paused),
        dur(&plain)
    );
}

/// Every word misaki does not know is spoken: a spread sample of the unknown-word
/// list (`synth/tests/data/unknown_words.txt`; the whole list is checked for
/// phonemes in `kokoro-synth`'s tests), each said in a carrier sentence that must
/// come out longer than the carrier alone, and `/dev/phonemize` names the source.
#[tokio::test]
async fn unknown_words_are_spoken() {
    let s = state_with(&[]);
    let list = include_str!("../../synth/tests/data/unknown_words.txt");
    let words: Vec<&str> = list
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .collect();
    let ms = |h: &axum::http::HeaderMap| -> u64 {
        h["x-audio-duration-ms"].to_str().unwrap().parse().unwrap()
    };
    let say = |text: String| json!({"input": text, "response_format": "pcm", "stream": false, "voice": "af_heart"});
    let (st, h, _) = speech(&s, say("Say now.".into())).await;
    assert_eq!(st, 200);
    let carrier = ms(&h);
    for w in words.iter().step_by(words.len() / 12) {
        let (st, h, _) = speech(&s, say(format!("Say {w} now."))).await;
        assert_eq!(st, 200, "{w}");
        assert!(ms(&h) > carrier + 150, "{w}: {} ms vs {carrier} ms", ms(&h));
        let (_, _, b) = send(
            &s,
            post_json(
                "/dev/phonemize",
                json!({"text": format!("Say {w} now.")}).to_string(),
            ),
        )
        .await;
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(!v["phonemes"].as_str().unwrap().contains('❓'), "{v}");
        let word = v["words"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["text"] == *w)
            .unwrap_or_else(|| panic!("{w} not in {v}"));
        assert_ne!(word["source"], "lexicon", "{v}");
        assert!(!word["phonemes"].as_str().unwrap().is_empty(), "{v}");
    }
}

#[test]
fn cuda_request_fails_loudly_without_cuda() {
    let mut cfg = Wrap::parse_from(["test", "--device", "cuda"])
        .serve
        .validate()
        .unwrap();
    cfg.engine.workers = 1;
    let err = kokoro_backend::start_engine(&cfg.engine, 1, Arc::new(Metrics::default()))
        .err()
        .expect("no CUDA here: start must fail, not fall back to CPU");
    assert!(err.contains("CUDA") || err.contains("cuda"), "{err}");
}

/// The model as two halves on the real graph: decoding every frame is the unsplit
/// graph to rounding, and decoder windows stream the same sentence in parts that
/// cover it (no frame lost or doubled, the first part well under a second).
#[test]
fn the_split_model_matches_the_whole_graph_and_windows_cover_the_sentence() {
    use kokoro_backend::engine::model::OrtModel;
    use kokoro_synth::windows::DEFAULT_WINDOWS;
    use kokoro_synth::{Synthesis, Tables, synthesize};
    let e = engine();
    let cfg = e.config();
    let mut split = OrtModel::load(cfg).unwrap();
    assert!(split.is_split(), "the default model's halves are installed");
    let mut whole = OrtModel::load_unsplit(cfg).unwrap();
    assert!(!whole.is_split());
    let ps = kokoro_synth::g2p::phonemize(
        "The quick brown fox jumps over the lazy dog.",
        kokoro_core::Lang::EnUs,
    )
    .unwrap();
    let (ids, _) = e.vocab().encode_padded(&ps);
    let voice = kokoro_core::voice::VoiceBlend::single("af_heart");
    let style = e.voices().style(&voice, ids.len() - 2).unwrap();
    let b = whole.infer(&ids, &style, 1.0).unwrap();
    // The decoders are rewritten (kokoro_core::assets::DECODER_REWRITES; on CPU the
    // fused-Snake one, FUSED_DECODER_REWRITES): the same function to rounding, not
    // bit for bit. About 110 dB measured; a rewrite that changed the function would
    // land near 0-30 dB.
    let (_, plain) = kokoro_backend::engine::model::halves(&cfg.model);
    let mut plain = OrtModel::load_with_decoder(cfg, Some(&plain)).unwrap();
    for (what, m) in [("fused (served)", &mut split), ("plain", &mut plain)] {
        let a = m.infer(&ids, &style, 1.0).unwrap();
        assert_eq!(a.len(), b.len());
        let signal: f64 = b.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let noise: f64 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum();
        let snr_db = 10.0 * (signal / noise.max(1e-30)).log10();
        assert!(
            snr_db > 80.0,
            "the {what} halves differ from the whole graph: {snr_db:.1} dB"
        );
    }
    let t = Tables {
        vocab: e.vocab(),
        voices: e.voices(),
    };
    let (all, _) = synthesize(&mut split, &ps, &voice, 1.0, t, &|| false, &mut |_| {}).unwrap();
    let mut s = Synthesis::new(&ps, &voice, 1.0, t, Some(DEFAULT_WINDOWS), &[]).unwrap();
    let mut parts = Vec::new();
    while let Some(p) = s.next(&mut split, &|| false, &mut |_| {}) {
        parts.push(p.unwrap());
    }
    assert!(parts.len() >= 3, "{} parts", parts.len());
    assert!(
        !parts[0].is_empty() && parts[0].len() < 24_000,
        "first part {}",
        parts[0].len()
    );
    let n = parts.iter().map(Vec::len).sum::<usize>();
    assert!(
        n.abs_diff(all.len()) * 100 <= all.len(),
        "{n} vs {} samples",
        all.len()
    );
}

/// Word marks on the real model: every word of the sentence, in order, each over
/// audible speech, the first where speech begins and the last where it ends; a
/// streamed (windowed) synthesis marks the same places.
#[test]
fn words_are_marked_where_the_model_speaks_them() {
    use kokoro_backend::engine::model::OrtModel;
    use kokoro_synth::pipeline::{Input, render, start_timed};
    use kokoro_synth::windows::DEFAULT_WINDOWS;
    let e = engine();
    let mut model = OrtModel::load(e.config()).unwrap();
    let text = "The quick brown fox jumps over the lazy dog.";
    let voice = kokoro_core::voice::VoiceBlend::single("af_heart");
    let t = kokoro_synth::Tables {
        vocab: e.vocab(),
        voices: e.voices(),
    };
    let input = Input::Text(text.into());
    let lang = kokoro_core::Lang::EnUs;
    let r = render(
        &mut model,
        &input,
        lang,
        &voice,
        1.0,
        t,
        true,
        &|| false,
        &mut |_| {},
    )
    .unwrap();
    let names: Vec<&str> = r.words.iter().map(|(w, _)| w.text.as_str()).collect();
    assert_eq!(
        names,
        [
            "The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"
        ]
    );
    let audio = &r.audio;
    // Each word holds speech: its loudest 25 ms is above half the sentence's RMS
    // over all (the durations also give a word the quiet of its stops, and the
    // last word the tail the model predicts for it).
    let rms = |s: &[f32]| (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt();
    let whole = rms(audio);
    let loudest = |s: &[f32]| s.chunks(600).map(rms).fold(0.0f32, f32::max);
    let mut last = 0;
    for (w, m) in &r.words {
        assert!(
            m.start >= last && m.end > m.start && m.end <= audio.len(),
            "{} {m:?}",
            w.text
        );
        let peak = loudest(&audio[m.start..m.end]);
        assert!(
            peak > 0.5 * whole,
            "{} is quiet ({peak} vs {whole}): {m:?}",
            w.text
        );
        last = m.end;
    }
    let loud = |s: &f32| s.abs() > 0.01;
    let onset = audio.iter().position(loud).unwrap();
    let offset = audio.iter().rposition(loud).unwrap();
    let (first, end) = (&r.words[0].1, &r.words[8].1);
    assert!(
        first.start.abs_diff(onset) < 2_400,
        "first word at {} vs speech at {onset}",
        first.start
    );
    assert!(
        end.start < offset && end.end >= offset,
        "last word {end:?} vs speech end {offset}"
    );
    // The same marks when the sentence streams in decoder windows.
    let (mut s, _, words) =
        start_timed(&input, lang, &voice, 1.0, t, Some(DEFAULT_WINDOWS), true).unwrap();
    let mut marks = Vec::new();
    while let Some(p) = s.next(&mut model, &|| false, &mut |_| {}) {
        p.unwrap();
        marks.extend(s.take_marks());
    }
    assert_eq!(words.len(), 9);
    assert_eq!(marks.len(), 9);
    for ((_, a), b) in r.words.iter().zip(&marks) {
        assert!(a.start.abs_diff(b.start) <= 600, "{a:?} vs {b:?}");
    }
}
