//! Every pure format, streamed and not, arrives whole and decodes, for any text:
//! the pipeline (real G2P, real planning, loudness and encoders) over a fake model
//! whose output length follows its input, so generated texts reach every block
//! remainder. FLAC is decoded with `claxon`, WAV and PCM by their layout.

use kokoro_core::{AudioFormat, SAMPLE_RATE, SpeechRequest};
use kokoro_synth::Tables;
use kokoro_synth::fake::{self, ToneModel};
use kokoro_synth::pipeline::{self, PureEncoders, Run, Settings};
use proptest::prelude::*;

/// Samples in a decoded answer.
fn decode(format: AudioFormat, bytes: &[u8], stream: bool) -> usize {
    match format {
        AudioFormat::Pcm => {
            assert_eq!(bytes.len() % 2, 0);
            bytes.len() / 2
        }
        AudioFormat::Wav => {
            assert_eq!(&bytes[..4], b"RIFF");
            assert_eq!(&bytes[36..40], b"data");
            let data = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]);
            if stream {
                assert_eq!(data, u32::MAX, "a streamed WAV has an open length");
            } else {
                assert_eq!(data as usize, bytes.len() - 44, "exact size when whole");
            }
            (bytes.len() - 44) / 2
        }
        AudioFormat::Flac => {
            let mut r = claxon::FlacReader::new(bytes).expect("a FLAC stream");
            assert_eq!(r.streaminfo().sample_rate, SAMPLE_RATE);
            let mut n = 0;
            for s in r.samples() {
                s.expect("every frame decodes");
                n += 1;
            }
            n
        }
        f => panic!("{f:?} is not a pure format"),
    }
}

fn check(text: &str, format: AudioFormat, stream: bool, speed: f32) {
    let body = serde_json::json!({
        "input": text, "voice": "af_heart", "response_format": format.as_str(),
        "stream": stream, "speed": speed,
    });
    let req = SpeechRequest::from_value(&body).expect("valid request");
    let (vocab, voices) = (fake::vocab(), fake::voices(&["af_heart"]));
    let settings = Settings::default();
    let Ok(speech) = pipeline::prepare(&req, &voices, &settings) else {
        return; // nothing speakable: a 422, not audio
    };
    let tables = Tables {
        vocab: &vocab,
        voices: &voices,
    };
    let mut run = Run::new(&speech, tables, &settings, &PureEncoders).unwrap();
    let mut bytes = Vec::new();
    let mut steps = 0;
    while let Some(step) = run.step(&mut ToneModel) {
        let c = step.expect("every step succeeds");
        if !stream {
            assert!(
                c.last || c.bytes.is_empty(),
                "a whole answer leaves at its end"
            );
        }
        bytes.extend(c.bytes);
        steps += 1;
    }
    // At least one step per piece (one per model call, and per decoder window of
    // a streamed first piece) and the tail.
    assert!(steps > speech.pieces.len(), "{steps} steps");
    let n = decode(format, &bytes, stream);
    let want = run.samples();
    let pad = if format == AudioFormat::Flac { 31 } else { 0 };
    assert!(
        n >= want && n <= want + pad,
        "{format:?} stream={stream}: decoded {n} samples of {want} ({text:?})"
    );
}

#[test]
fn the_sentence_that_cut_streamed_flac_short() {
    for stream in [true, false] {
        for f in [AudioFormat::Flac, AudioFormat::Wav, AudioFormat::Pcm] {
            check("Hello there, this is a test.", f, stream, 1.0);
        }
    }
}

fn text() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "hello", "there", "test", "the", "quick", "brown", "fox", "42", "$3.50", "Dr.", "ok",
    ]);
    let sep = prop::sample::select(vec![" ", ", ", ". ", "! ", "? ", "; ", " [pause:0.2s] "]);
    prop::collection::vec((word, sep), 1..24).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(w, s)| format!("{w}{s}"))
            .collect::<String>()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_pure_format_decodes_whole(
        t in text(),
        speed in prop::sample::select(vec![0.7f32, 1.0, 1.3]),
    ) {
        for stream in [true, false] {
            for f in [AudioFormat::Flac, AudioFormat::Wav, AudioFormat::Pcm] {
                check(&t, f, stream, speed);
            }
        }
    }
}
