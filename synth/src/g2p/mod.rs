//! Grapheme-to-phoneme: English through `misaki-rs` (the G2P Kokoro was trained
//! with), other languages through espeak-ng when the `espeak` feature is on.
//!
//! `misaki-rs` marks out-of-vocabulary words with a placeholder; with the
//! `espeak` feature those words go through espeak-ng instead.

#[cfg(feature = "espeak")]
mod espeak;

use kokoro_core::Lang;
use misaki_rs::{G2P, Language};
use std::sync::OnceLock;

/// Why text could not be phonemized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum G2pError {
    /// The language needs espeak-ng, which this build does not include.
    Unsupported(Lang),
    Failed(String),
}

static EN_US: OnceLock<G2P> = OnceLock::new();
static EN_GB: OnceLock<G2P> = OnceLock::new();

fn english(lang: Lang) -> &'static G2P {
    let (cell, language, british) = match lang {
        Lang::EnGb => (&EN_GB, Language::EnglishGB, true),
        _ => (&EN_US, Language::EnglishUS, false),
    };
    cell.get_or_init(|| {
        #[cfg(feature = "espeak")]
        {
            G2P::with_fallback(language, espeak::fallback(british))
        }
        #[cfg(not(feature = "espeak"))]
        {
            let _ = british;
            G2P::new(language)
        }
    })
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

/// Phonemes (Kokoro's phoneme alphabet) for already-normalized text.
pub fn phonemize(text: &str, lang: Lang) -> Result<String, G2pError> {
    if lang.is_english() {
        let (ps, _) = english(lang)
            .g2p(text)
            .map_err(|e| G2pError::Failed(format!("{e:?}")))?;
        return Ok(ps);
    }
    #[cfg(feature = "espeak")]
    {
        espeak::phonemize(text, lang)
    }
    #[cfg(not(feature = "espeak"))]
    {
        Err(G2pError::Unsupported(lang))
    }
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
    fn espeak_covers_oov_words_and_other_languages() {
        let ps = phonemize("Kokoro", Lang::EnUs).unwrap();
        assert!(
            ps.chars().filter(|c| c.is_alphabetic()).count() >= 4,
            "{ps}"
        );
        assert!(!ps.contains('❓'), "{ps}");
        let es = phonemize("hola amigo", Lang::Es).unwrap();
        assert!(es.contains('o') && es.contains('m'), "{es}");
    }
}
