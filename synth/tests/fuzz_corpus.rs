//! Replay the committed fuzz corpus (`fuzz/corpus/<target>/`) through the targets'
//! bodies (`kokoro_synth::fuzz`): every input that once mattered to the fuzzer
//! stays a regression test, in seconds, without nightly or cargo-fuzz.

use std::path::Path;

#[test]
fn the_fuzz_corpus_replays_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for (name, target) in kokoro_synth::fuzz::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {name}");
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| target(&data));
            assert!(r.is_ok(), "{name}: {} fails", f.display());
        }
        total += files.len();
    }
    assert!(total >= 6);
}
