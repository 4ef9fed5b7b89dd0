//! Grapheme-to-phoneme: English through `misaki-rs` (the G2P Kokoro was trained
//! with) and, for the words misaki does not know, the out-of-vocabulary chain of
//! [`oov`] (split, acronyms, letters, CMUdict, a learned G2P; never the unknown
//! marker); other languages through espeak-ng when the `espeak` feature is on.

#[cfg(feature = "espeak")]
mod espeak;
pub mod oov;

use kokoro_core::Lang;
use kokoro_core::chunk::{ChunkOptions, chunk_text};
use misaki_rs::{G2P, Language};
pub use oov::Source;
use std::path::Path;
use std::sync::OnceLock;
#[cfg(feature = "espeak")]
use std::sync::atomic::{AtomicBool, Ordering};

/// Why text could not be phonemized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum G2pError {
    /// The language needs espeak-ng, which this build does not include.
    Unsupported(Lang),
    Failed(String),
}

static EN_US: OnceLock<G2P> = OnceLock::new();
static EN_GB: OnceLock<G2P> = OnceLock::new();
static OOV_DATA: OnceLock<oov::Data> = OnceLock::new();
#[cfg(feature = "espeak")]
static ESPEAK_ENGLISH: AtomicBool = AtomicBool::new(false);

fn english(lang: Lang) -> &'static G2P {
    let (cell, language) = match lang {
        Lang::EnGb => (&EN_GB, Language::EnglishGB),
        _ => (&EN_US, Language::EnglishUS),
    };
    cell.get_or_init(|| G2P::new(language))
}

/// Load the fallback's dictionary and learned model from the assets directory
/// (once per process; later calls return at once). Without them the chain still
/// speaks every word, by splitting and spelling.
pub fn load_fallback(assets_dir: &Path) -> Result<(), String> {
    if OOV_DATA.get().is_some() {
        return Ok(());
    }
    let data = oov::Data::load(assets_dir)?;
    let _ = OOV_DATA.set(data);
    Ok(())
}

/// The data [`load_fallback`] loaded, if it has.
pub fn fallback_data() -> Option<&'static oov::Data> {
    OOV_DATA.get()
}

/// With the `espeak` feature: try espeak-ng for unknown English words before the
/// dictionary and the learned model (off by default; other languages always use it).
#[cfg(feature = "espeak")]
pub fn set_espeak_for_english(on: bool) {
    ESPEAK_ENGLISH.store(on, Ordering::Relaxed);
}

/// Warm the American English dictionaries (parsed on first use, ~100 MB). The
/// British ones load on the first en-gb request, so servers that never see one
/// do not pay for them.
pub fn warm_up() {
    let _ = english(Lang::EnUs).g2p("warm up");
}

/// Whether this build can phonemize `lang`.
pub fn supports(lang: Lang) -> bool {
    lang.is_english() || cfg!(feature = "espeak")
}

/// One word of the input and its phonemes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub phonemes: String,
    pub source: Source,
    /// Where `phonemes` lie in the phoneme string returned with the word (bytes).
    pub at: std::ops::Range<usize>,
}

/// The most text one misaki call gets (the speech path's chunks are smaller).
pub const MAX_CALL_CHARS: usize = 256;

/// Phonemes for already-normalized text (Kokoro's phoneme alphabet).
pub fn phonemize(text: &str, lang: Lang) -> Result<String, G2pError> {
    phonemize_words(text, lang, false).map(|(ps, _)| ps)
}

/// Phonemes for already-normalized text, and (when `words` is set) each word's
/// phonemes and source. Non-English text has no word list.
pub fn phonemize_words(
    text: &str,
    lang: Lang,
    words: bool,
) -> Result<(String, Vec<Word>), G2pError> {
    if !lang.is_english() {
        #[cfg(feature = "espeak")]
        {
            return espeak::phonemize(text, lang).map(|ps| (ps, Vec::new()));
        }
        #[cfg(not(feature = "espeak"))]
        {
            return Err(G2pError::Unsupported(lang));
        }
    }
    let g2p = english(lang);
    // misaki's tokenizer uses backtracking regexes whose time grows with the square
    // of a token's length (one call on 512 chars of "a/": 0.46 s; on 4,096 of "aA":
    // 89 s, 2-core Xeon); each call gets at
    // most MAX_CALL_CHARS, cut where the chunker would cut, so the cost stays linear.
    let mut tokens = Vec::new();
    let opts = ChunkOptions {
        first_max_chars: MAX_CALL_CHARS,
        max_chars: MAX_CALL_CHARS,
        min_chars: 0,
    };
    for r in chunk_text(text, &opts) {
        let (_, mut part) = g2p
            .g2p(&text[r.clone()])
            .map_err(|e| G2pError::Failed(format!("{e:?}")))?;
        if let Some(last) = part.last_mut()
            && last.whitespace.is_empty()
            && r.end < text.len()
            && text[..r.end].ends_with(char::is_whitespace)
        {
            last.whitespace = " ".into();
        }
        tokens.append(&mut part);
    }
    let unk = g2p.unk.as_str();
    let known = |w: &str| -> Option<String> {
        let (ps, _) = g2p.g2p(w).ok()?;
        let ps = ps.trim();
        (!ps.is_empty() && !ps.contains(unk)).then(|| ps.to_string())
    };
    let british = lang == Lang::EnGb;
    #[cfg(feature = "espeak")]
    let espeak_word = move |w: &str| espeak::english_word(w, british);
    #[cfg(feature = "espeak")]
    let espeak: Option<oov::WordFn<'_>> = ESPEAK_ENGLISH
        .load(Ordering::Relaxed)
        .then_some(&espeak_word as _);
    #[cfg(not(feature = "espeak"))]
    let espeak = None;
    let chain = oov::Chain {
        data: OOV_DATA.get().unwrap_or(&oov::Data::EMPTY),
        british,
        known: &known,
        espeak,
    };
    let inline = if words {
        inline_phonemes(text)
    } else {
        Vec::new()
    };
    let mut out = String::with_capacity(text.len() * 2);
    let mut list = Vec::new();
    for tk in &tokens {
        let (ps, source) = match tk.phonemes.as_deref() {
            Some(ps) if !ps.contains(unk) => {
                let inline = inline.iter().any(|&(w, p)| w == tk.text && p == ps);
                let source = if inline {
                    Source::Inline
                } else {
                    Source::Lexicon
                };
                (std::borrow::Cow::Borrowed(ps), source)
            }
            _ => {
                let (ps, source) = chain.resolve(&tk.text);
                (std::borrow::Cow::Owned(ps), source)
            }
        };
        let at = out.len()..out.len() + ps.len();
        out.push_str(&ps);
        out.push_str(&tk.whitespace);
        if words && tk.text.chars().any(char::is_alphanumeric) {
            list.push(Word {
                text: tk.text.clone(),
                phonemes: ps.into_owned(),
                source,
                at,
            });
        }
    }
    Ok((out, list))
}

/// The `[word](/phonemes/)` pairs of `text`, to tell inline phonemes from misaki's.
fn inline_phonemes(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find("](/") else { break };
        let word = &rest[..close];
        let after = &rest[close + 3..];
        let Some(end) = after.find("/)") else { break };
        out.push((word, &after[..end]));
        rest = &after[end + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_phonemes() {
        let ps = phonemize("Hello world.", Lang::EnUs).unwrap();
        assert!(ps.contains("wˈɜɹld"), "{ps}");
        let gb = phonemize("schedule", Lang::EnGb).unwrap();
        let us = phonemize("schedule", Lang::EnUs).unwrap();
        assert_ne!(gb, us);
        // Inline phonemes are honoured.
        let ps = phonemize("Say [Kokoro](/kˈOkəɹO/).", Lang::EnUs).unwrap();
        assert!(ps.contains("kˈOkəɹO"), "{ps}");
    }

    #[test]
    fn unknown_words_are_never_silent_and_known_ones_keep_misaki_phonemes() {
        // No data loaded in this test binary: the chain splits and spells.
        let text = "Kokoro runs on Kubernetes with PostgreSQL and Nguyen.";
        let (ps, words) = phonemize_words(text, Lang::EnUs, true).unwrap();
        assert!(!ps.contains('❓'), "{ps}");
        let (raw, _) = english(Lang::EnUs).g2p(text).unwrap();
        assert!(
            raw.contains('❓'),
            "the premise: misaki does not know them ({raw})"
        );
        let by_text = |t: &str| words.iter().find(|w| w.text == t).unwrap();
        for (w, source) in [("runs", Source::Lexicon), ("with", Source::Lexicon)] {
            assert_eq!(by_text(w).source, source);
            assert!(raw.contains(&by_text(w).phonemes));
        }
        for w in &words {
            assert_eq!(ps[w.at.clone()], w.phonemes, "{}", w.text);
        }
        for w in ["Kokoro", "Kubernetes", "PostgreSQL", "Nguyen"] {
            assert_ne!(by_text(w).source, Source::Lexicon, "{w}");
            assert!(by_text(w).phonemes.chars().count() >= 4, "{w}");
        }
        // A sentence misaki knows comes out exactly as misaki writes it.
        let known = "The quick brown fox jumps over the lazy dog, twice.";
        assert_eq!(
            phonemize(known, Lang::EnUs).unwrap(),
            english(Lang::EnUs).g2p(known).unwrap().0
        );
    }

    #[test]
    fn word_sources() {
        let (_, words) =
            phonemize_words("Say [Kokoro](/kˈOkəɹO/) twice 🙂 SQL", Lang::EnUs, true).unwrap();
        let sources: Vec<(&str, Source)> =
            words.iter().map(|w| (w.text.as_str(), w.source)).collect();
        assert!(sources.contains(&("Kokoro", Source::Inline)), "{sources:?}");
        assert!(sources.contains(&("Say", Source::Lexicon)), "{sources:?}");
        assert!(!words.iter().any(|w| w.text == "🙂"), "{sources:?}");
        assert_eq!(
            inline_phonemes("a [b](/c/) [d](/e f/)"),
            vec![("b", "c"), ("d", "e f")]
        );
        assert!(
            phonemize_words("Hello.", Lang::EnUs, false)
                .unwrap()
                .1
                .is_empty()
        );
    }

    #[cfg(not(feature = "espeak"))]
    #[test]
    fn other_languages_need_espeak() {
        assert_eq!(
            phonemize("hola", Lang::Es),
            Err(G2pError::Unsupported(Lang::Es))
        );
        assert!(!supports(Lang::Fr));
        assert!(supports(Lang::EnGb));
    }

    #[cfg(feature = "espeak")]
    #[test]
    fn espeak_covers_other_languages_and_english_on_request() {
        set_espeak_for_english(true);
        let (ps, words) = phonemize_words("Kokoro", Lang::EnUs, true).unwrap();
        set_espeak_for_english(false);
        assert!(!ps.contains('❓'), "{ps}");
        assert_eq!(words[0].source, Source::Espeak);
        let es = phonemize("hola amigo", Lang::Es).unwrap();
        assert!(es.contains('o') && es.contains('m'), "{es}");
    }
}
