//! The out-of-vocabulary chain on its real data (`cargo xtask assets`): the
//! learned G2P against the reference implementation, every word of the unknown
//! list spoken, and words misaki knows unchanged.

use kokoro_core::Lang;
use kokoro_core::vocab::Vocab;
use kokoro_synth::g2p::{self, Source, oov};
use misaki_rs::{G2P, Language};

fn assets() -> std::path::PathBuf {
    kokoro_synth::assets_dir_from_env()
}

fn data() -> &'static oov::Data {
    g2p::load_fallback(&assets()).expect("G2P fallback data (run `cargo xtask assets`)");
    g2p::fallback_data().unwrap()
}

fn vocab() -> Vocab {
    let text = std::fs::read_to_string(assets().join(kokoro_core::assets::VOCAB_FILE))
        .expect("vocab.json (run `cargo xtask assets`)");
    Vocab::from_json(&text).unwrap()
}

fn unknown_words() -> Vec<&'static str> {
    include_str!("data/unknown_words.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .collect()
}

#[test]
fn learned_g2p_matches_the_reference_implementation() {
    // g2p-en's own numpy `predict` on these words (run once, by hand, on the
    // pinned checkpoint): the Rust inference must pick the same phones.
    let reference = [
        ("kokoro", "K OW0 K AO1 R OW0"),
        ("kubernetes", "K AH0 B ER1 N AH0 T S"),
        ("postgre", "P AA1 S T G R EY2"),
        ("tiktok", "T IH1 K T AH0 K"),
        ("pytorch", "P IH1 T ER0 K"),
        ("nginx", "IH1 NG K"),
        ("zyxwvut", "Z IH1 K S V UW0 T"),
    ];
    let neural = data().neural.as_ref().unwrap();
    for (word, want) in reference {
        assert_eq!(neural.predict(word).unwrap().join(" "), want, "{word}");
    }
    assert_eq!(neural.predict(""), None);
    assert_eq!(
        neural.predict(&"a".repeat(oov::neural::MAX_LETTERS + 1)),
        None
    );
    let cmu = data().cmudict.as_ref().unwrap();
    assert!(cmu.len() > 120_000, "{}", cmu.len());
    assert_eq!(cmu.lookup("nguyen").unwrap().join(" "), "N UW0 Y EH1 N");
}

#[test]
fn every_unknown_word_is_spoken() {
    data();
    let misaki = G2P::new(Language::EnglishUS);
    let vocab = vocab();
    let words = unknown_words();
    assert!(words.len() >= 1000, "{}", words.len());
    let mut by_source = std::collections::HashMap::new();
    for w in &words {
        let (raw, _) = misaki.g2p(w).unwrap();
        assert!(
            raw.contains('❓'),
            "misaki now knows {w}: take it off the list"
        );
        for lang in [Lang::EnUs, Lang::EnGb] {
            let (ps, list) = g2p::phonemize_words(w, lang, true).unwrap();
            assert!(!ps.contains('❓'), "{w}: {ps}");
            let (ids, _) = vocab.encode_padded(&ps);
            // Every symbol is in the model's vocabulary, and there are some.
            assert_eq!(ids.len() - 2, ps.trim().chars().count(), "{w}: {ps}");
            assert!(ids.len() - 2 >= 2, "{w}: {ps}");
            if lang == Lang::EnUs {
                *by_source.entry(list[0].source).or_insert(0) += 1;
            }
        }
    }
    // The list exercises the dictionary and the learned model, not only spelling.
    for s in [Source::Cmudict, Source::G2p, Source::Split] {
        assert!(by_source.get(&s).copied().unwrap_or(0) > 5, "{by_source:?}");
    }
}

#[test]
fn words_misaki_knows_keep_their_phonemes() {
    data();
    let misaki = G2P::new(Language::EnglishUS);
    let gold = misaki_rs::data::load_us_gold();
    let mut words: Vec<&String> = gold.keys().collect();
    words.sort();
    let mut checked = 0;
    for w in words.iter().step_by(97) {
        let (raw, _) = misaki.g2p(w).unwrap();
        if raw.contains('❓') {
            continue;
        }
        assert_eq!(g2p::phonemize(w, Lang::EnUs).unwrap(), raw, "{w}");
        checked += 1;
    }
    assert!(checked > 500, "{checked}");
    let text = "In 1969, Dr. Smith paid $3.50 for the world's first e-mail; it's 2 o'clock.";
    assert_eq!(
        g2p::phonemize(text, Lang::EnUs).unwrap(),
        misaki.g2p(text).unwrap().0
    );
}

#[test]
fn dictionary_names_sound_like_the_dictionary() {
    data();
    let (ps, words) =
        g2p::phonemize_words("Nguyen and Tanaka met Siobhan.", Lang::EnUs, true).unwrap();
    assert!(ps.contains("nujˈɛn") && ps.contains("tɑnˈɑkə"), "{ps}");
    assert!(words.iter().filter(|w| w.source == Source::Cmudict).count() >= 3);
    let (gb, _) = g2p::phonemize_words("Tanaka's Dvorak", Lang::EnGb, true).unwrap();
    assert!(gb.contains('ː') || gb.contains('ɒ'), "British vowels: {gb}");
}
