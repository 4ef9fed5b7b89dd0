//! Print each word's phonemes and source: `cargo run -p kokoro-synth --example phonemize -- "text" [en-gb]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let text = args.next().unwrap_or_default();
    let lang = args
        .next()
        .and_then(|l| kokoro_core::Lang::parse(&l))
        .unwrap_or(kokoro_core::Lang::EnUs);
    let dir = kokoro_synth::assets_dir_from_env();
    if let Err(e) = kokoro_synth::g2p::load_fallback(&dir) {
        eprintln!("no fallback data: {e}");
    }
    let (ps, words) = kokoro_synth::g2p::phonemize_words(&text, lang, true).unwrap();
    println!("{ps}");
    for w in words {
        println!("  {:<20} {:<24} {}", w.text, w.phonemes, w.source.as_str());
    }
}
