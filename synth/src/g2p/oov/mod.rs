//! What misaki does not know: the out-of-vocabulary chain. Only words misaki
//! leaves unresolved come here; every word leaves with phonemes.
//!
//! For one word, in order (the first that answers wins):
//! 1. acronyms said as words (`JSON`, `GIF`: [`split::ACRONYM_WORDS`]);
//! 2. words read as letters: all capitals up to 5 letters, no vowel (`SQL`, `npm`);
//! 3. espeak-ng, only where the user turned it on for English (feature `espeak`);
//! 4. the CMU Pronouncing Dictionary ([`cmudict`]), mapped by [`arpabet`];
//! 5. split into parts (`TikTok`, `GPT4o`, `Kubernetes-native`, `Nguyen's`), each
//!    part through misaki first, then 1-4 and 6-7;
//! 6. the learned G2P of `g2p-en` ([`neural`]), mapped by [`arpabet`];
//! 7. the letters, spelled.
//!
//! A token without a letter or digit (an emoji, a stray symbol) is silent by
//! design and reported as [`Source::Symbol`].

pub mod arpabet;
pub mod cmudict;
pub mod neural;
pub mod split;

use cmudict::CmuDict;
use neural::Neural;
use std::path::Path;

/// Where a word's phonemes came from (shown by `/dev/phonemize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// misaki's dictionaries and rules (numbers included).
    Lexicon,
    /// `[word](/phonemes/)` in the input.
    Inline,
    Acronym,
    Letters,
    Espeak,
    Cmudict,
    /// Parts resolved one by one.
    Split,
    G2p,
    /// No letter or digit to speak.
    Symbol,
}

impl Source {
    pub const ALL: [Source; 9] = [
        Source::Lexicon,
        Source::Inline,
        Source::Acronym,
        Source::Letters,
        Source::Espeak,
        Source::Cmudict,
        Source::Split,
        Source::G2p,
        Source::Symbol,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Lexicon => "lexicon",
            Source::Inline => "inline",
            Source::Acronym => "acronym",
            Source::Letters => "letters",
            Source::Espeak => "espeak",
            Source::Cmudict => "cmudict",
            Source::Split => "split",
            Source::G2p => "g2p",
            Source::Symbol => "symbol",
        }
    }
}

/// The fallback's data files (from `cargo xtask assets`); either may be absent,
/// and then the chain skips its stage.
#[derive(Default)]
pub struct Data {
    pub cmudict: Option<CmuDict>,
    pub neural: Option<Neural>,
}

impl Data {
    pub const EMPTY: Data = Data {
        cmudict: None,
        neural: None,
    };

    /// Read both files from the assets directory.
    pub fn load(assets_dir: &Path) -> Result<Data, String> {
        use kokoro_core::assets::{CMUDICT_FILE, G2P_EN_FILE};
        let read = |name: &str| {
            let p = assets_dir.join(name);
            std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let text = String::from_utf8(read(CMUDICT_FILE)?)
            .map_err(|_| format!("{CMUDICT_FILE} is not UTF-8"))?;
        Ok(Data {
            cmudict: Some(CmuDict::parse(text)?),
            neural: Some(Neural::from_npz(&read(G2P_EN_FILE)?)?),
        })
    }
}

/// Longer "words" (a pasted hash, a run of letters) are spelled without asking
/// the dictionaries, and a word of more parts is not split: each part would be one
/// more misaki call, so the chain's cost stays bounded by the word's length.
const MAX_WORD_CHARS: usize = 48;
const MAX_PARTS: usize = 8;

/// A word-to-phonemes function the chain calls (misaki, espeak-ng).
pub type WordFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The chain for one language variant.
pub struct Chain<'a> {
    pub data: &'a Data,
    pub british: bool,
    /// misaki on one word: its phonemes when it knows the word.
    pub known: WordFn<'a>,
    /// espeak-ng on one word, where the user asked for it first.
    pub espeak: Option<WordFn<'a>>,
}

impl Chain<'_> {
    /// Phonemes for a word misaki did not know, and where they came from.
    pub fn resolve(&self, word: &str) -> (String, Source) {
        let word: String = word.chars().map(split::fold).collect();
        if !word.chars().any(char::is_alphanumeric) {
            return (String::new(), Source::Symbol);
        }
        if word.chars().count() > MAX_WORD_CHARS {
            return self.spelled(&word);
        }
        if split::plural_initialism(&word).is_none()
            && let Some(found) = self.whole(&word)
        {
            return found;
        }
        let parts = split::parts(&word);
        if parts.len() > MAX_PARTS {
            return self.spelled(&word);
        }
        if parts.len() > 1 {
            let mut out = String::new();
            for p in parts {
                let ps = if p == "'s" {
                    plural_s(&out).to_string()
                } else {
                    self.part(p)
                };
                out.push_str(&ps);
            }
            return (out, Source::Split);
        }
        self.guess(&word)
    }

    /// Stages 1-4, for a word taken as a whole.
    fn whole(&self, w: &str) -> Option<(String, Source)> {
        if let Some(spelling) = split::acronym_word(w) {
            let ps: Vec<String> = spelling.split(' ').map(|s| self.part(s)).collect();
            return Some((ps.join(" "), Source::Acronym));
        }
        if split::reads_as_letters(w) {
            return split::spell(w, self.british).map(|p| (p, Source::Letters));
        }
        if let Some(ps) = self.espeak.and_then(|e| e(w)) {
            return Some((ps, Source::Espeak));
        }
        if w.chars().all(|c| c.is_ascii_alphabetic() || c == '\'') {
            let lower = w.to_ascii_lowercase();
            if let Some(phones) = self.data.cmudict.as_ref().and_then(|d| d.lookup(&lower)) {
                let ps = arpabet::to_kokoro(&phones, self.british, &lower);
                if !ps.is_empty() {
                    return Some((ps, Source::Cmudict));
                }
            }
        }
        None
    }

    /// Stages 6-7.
    fn guess(&self, w: &str) -> (String, Source) {
        let letters: String = w.chars().filter(char::is_ascii_alphabetic).collect();
        let lower = letters.to_ascii_lowercase();
        if lower.len() >= 2
            && let Some(phones) = self.data.neural.as_ref().and_then(|n| n.predict(&lower))
        {
            let ps = arpabet::to_kokoro(&phones, self.british, &lower);
            if !ps.is_empty() {
                return (ps, Source::G2p);
            }
        }
        self.spelled(w)
    }

    /// Stage 7: the letters by name.
    fn spelled(&self, w: &str) -> (String, Source) {
        match split::spell(w, self.british) {
            Some(ps) => (ps, Source::Letters),
            // Digits and letters of other scripts: misaki's number reading, or nothing.
            None => ((self.known)(w).unwrap_or_default(), Source::Symbol),
        }
    }

    /// One part of a split word: misaki first, single letters by name.
    fn part(&self, p: &str) -> String {
        if p.chars().count() == 1 && p.chars().all(|c| c.is_ascii_alphabetic()) {
            return split::spell(p, self.british).unwrap_or_default();
        }
        if let Some(ps) = (self.known)(p) {
            return ps;
        }
        match self.whole(p) {
            Some((ps, _)) => ps,
            None => self.guess(p).0,
        }
    }
}

/// The plural or possessive ending after `ps`: s after a voiceless consonant,
/// ɪz after a sibilant, z otherwise.
fn plural_s(ps: &str) -> &'static str {
    match ps.chars().rev().find(|c| !matches!(c, 'ˈ' | 'ˌ' | 'ː')) {
        Some('s' | 'z' | 'ʃ' | 'ʒ' | 'ʧ' | 'ʤ') => "ɪz",
        Some('p' | 't' | 'k' | 'f' | 'θ') => "s",
        _ => "z",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(w: &str) -> Option<String> {
        match w {
            "Git" => Some("ɡˈɪt".into()),
            "Hub" => Some("hˈʌb".into()),
            "native" => Some("nˈATɪv".into()),
            "4" => Some("fˈɔɹ".into()),
            _ => None,
        }
    }

    fn chain(data: &Data) -> Chain<'_> {
        Chain {
            data,
            british: false,
            known: &known,
            espeak: None,
        }
    }

    #[test]
    fn without_data_every_word_still_gets_phonemes() {
        let c = chain(&Data::EMPTY);
        assert_eq!(c.resolve("GitHub"), ("ɡˈɪthˈʌb".into(), Source::Split));
        assert_eq!(c.resolve("SQL").1, Source::Letters);
        assert_eq!(c.resolve("JSON").1, Source::Acronym);
        let (ps, src) = c.resolve("Kokoro");
        assert_eq!(src, Source::Letters);
        assert!(ps.starts_with("kˌA"), "{ps}");
        assert_eq!(c.resolve("GPT4o").0, "ʤˌipˌitˈifˈɔɹˈO");
        assert_eq!(c.resolve("🙂"), (String::new(), Source::Symbol));
        // Accents are folded before spelling.
        assert_eq!(c.resolve("Ñ").0, "ˈɛn");
    }

    #[test]
    fn long_or_many_part_words_are_spelled_without_asking_misaki() {
        let calls = std::cell::Cell::new(0);
        let counting = |w: &str| {
            calls.set(calls.get() + 1);
            known(w)
        };
        let c = Chain {
            data: &Data::EMPTY,
            british: false,
            known: &counting,
            espeak: None,
        };
        let (ps, src) = c.resolve(&"Ab".repeat(30));
        assert_eq!(src, Source::Letters);
        assert_eq!(ps.matches("bˈi").count() + ps.matches("bˌi").count(), 30);
        let (_, src) = c.resolve(&"Ab".repeat(9));
        assert_eq!(src, Source::Letters);
        assert_eq!(calls.get(), 0);
        // Eight parts are still split, each asked once.
        assert_eq!(c.resolve(&"Ab".repeat(8)).1, Source::Split);
        assert_eq!(calls.get(), 8);
        // Digits alone (no letters to spell) go back to misaki's number reading.
        assert_eq!(c.spelled("4"), ("fˈɔɹ".to_string(), Source::Symbol));
    }

    #[test]
    fn possessive_endings() {
        assert_eq!(plural_s("kˈæt"), "s");
        assert_eq!(plural_s("bˈʌs"), "ɪz");
        assert_eq!(plural_s("dˈɔɡ"), "z");
        let c = chain(&Data::EMPTY);
        assert_eq!(c.resolve("GitHub's").0, "ɡˈɪthˈʌbz");
        assert_eq!(c.resolve("APIs").0, "ˌApˌiˈIz");
    }

    #[test]
    fn source_names_are_distinct() {
        let names: std::collections::HashSet<_> = Source::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), Source::ALL.len());
    }
}
