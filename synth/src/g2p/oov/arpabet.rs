//! ARPAbet (the CMU Pronouncing Dictionary's alphabet, which the learned model also
//! emits) to Kokoro's phoneme set: the symbols misaki writes for American English,
//! or its British set (non-rhotic, long vowels marked with `ː`).
//!
//! Stress marks go right before the vowel, as misaki writes them (`kˈOkəɹO`).

/// One ARPAbet phone split into its base and stress digit (`AH0` -> `AH`, 0).
fn split(phone: &str) -> (&str, Option<u8>) {
    match phone.as_bytes().last() {
        Some(d @ b'0'..=b'2') => (&phone[..phone.len() - 1], Some(d - b'0')),
        _ => (phone, None),
    }
}

fn is_vowel(base: &str) -> bool {
    matches!(
        base,
        "AA" | "AE"
            | "AH"
            | "AO"
            | "AW"
            | "AY"
            | "EH"
            | "ER"
            | "EY"
            | "IH"
            | "IY"
            | "OW"
            | "OY"
            | "UH"
            | "UW"
    )
}

fn consonant(base: &str) -> Option<&'static str> {
    Some(match base {
        "B" => "b",
        "CH" => "ʧ",
        "D" => "d",
        "DH" => "ð",
        "F" => "f",
        "G" => "ɡ",
        "HH" => "h",
        "JH" => "ʤ",
        "K" => "k",
        "L" => "l",
        "M" => "m",
        "N" => "n",
        "NG" => "ŋ",
        "P" => "p",
        "R" => "ɹ",
        "S" => "s",
        "SH" => "ʃ",
        "T" => "t",
        "TH" => "θ",
        "V" => "v",
        "W" => "w",
        "Y" => "j",
        "Z" => "z",
        "ZH" => "ʒ",
        _ => return None,
    })
}

/// The vowel's symbol; `lot` says whether an `AA` is the LOT vowel (British `ɒ`)
/// rather than the PALM vowel (`ɑː`), which ARPAbet does not distinguish.
fn vowel(base: &str, stress: u8, british: bool, lot: bool) -> &'static str {
    match (base, british) {
        ("AA", false) => "ɑ",
        ("AA", true) if lot => "ɒ",
        ("AA", true) => "ɑː",
        ("AE", false) if stress == 0 => "ə",
        ("AE", false) => "æ",
        ("AE", true) => "a",
        ("AH", _) if stress == 0 => "ə",
        ("AH", _) => "ʌ",
        ("AO", false) => "ɔ",
        ("AO", true) => "ɔː",
        ("AW", _) => "W",
        ("AY", _) => "I",
        ("EH", _) => "ɛ",
        ("ER", false) if stress == 0 => "əɹ",
        ("ER", false) => "ɜɹ",
        ("ER", true) if stress == 0 => "ə",
        ("ER", true) => "ɜː",
        ("EY", _) => "A",
        ("IH", _) => "ɪ",
        ("IY", _) if stress == 0 => "i",
        ("IY", false) => "i",
        ("IY", true) => "iː",
        ("OW", false) => "O",
        ("OW", true) => "Q",
        ("OY", _) => "Y",
        ("UH", _) => "ʊ",
        ("UW", false) => "u",
        ("UW", true) => "uː",
        _ => "ə",
    }
}

/// British vowels before an `R` that no vowel follows (non-rhotic: the R goes).
fn british_r_colored(base: &str) -> Option<&'static str> {
    Some(match base {
        "IH" | "IY" => "ɪə",
        "EH" | "EY" | "AE" => "ɛː",
        "UH" | "UW" => "ʊə",
        "AA" => "ɑː",
        "AO" | "OW" => "ɔː",
        "AY" => "Iə",
        "AW" => "Wə",
        _ => return None,
    })
}

/// Kokoro phonemes for an ARPAbet pronunciation. `word` (lowercase letters) only
/// decides the British LOT/PALM vowel: an `AA` spelled with an `o` is LOT.
/// Unknown phones are skipped.
pub fn to_kokoro(phones: &[&str], british: bool, word: &str) -> String {
    let lot = word.contains('o') && !word.contains('a');
    let parsed: Vec<(&str, Option<u8>)> = phones.iter().map(|p| split(p)).collect();
    let vowel_at = |i: usize| parsed.get(i).is_some_and(|(b, _)| is_vowel(b));
    let unstressed_at = |i: usize| {
        parsed
            .get(i)
            .is_some_and(|(b, s)| is_vowel(b) && s.unwrap_or(0) == 0)
    };
    let mut out = String::with_capacity(phones.len() * 3);
    let mut i = 0;
    while i < parsed.len() {
        let (base, stress) = parsed[i];
        if is_vowel(base) {
            let stress = stress.unwrap_or(0);
            out.push_str(match stress {
                1 => "ˈ",
                2 => "ˌ",
                _ => "",
            });
            let next_is_r = parsed.get(i + 1).is_some_and(|(b, _)| *b == "R");
            if british
                && next_is_r
                && !vowel_at(i + 2)
                && let Some(v) = british_r_colored(base)
            {
                out.push_str(v);
                i += 2;
                continue;
            }
            let prev_consonant = i > 0 && !vowel_at(i - 1);
            let next = parsed.get(i + 1).map(|(b, _)| *b);
            let last_vowel = !(i + 1..parsed.len()).any(vowel_at);
            if stress == 0 && prev_consonant {
                // Syllabic L and N, as misaki writes them: "little" -> lˈɪTᵊl,
                // "accident" -> ˈæksədᵊnt.
                let syllabic = match (base, next) {
                    ("AH", Some("L")) => {
                        !matches!(parsed[i - 1].0, "V" | "R" | "W" | "Y" | "L" | "B")
                    }
                    // Not "-tion" (ʃən) and not a first syllable ("con-": kən).
                    ("AH" | "EH", Some("N")) => {
                        !vowel_at(i + 2)
                            && matches!(parsed[i - 1].0, "T" | "D" | "S" | "Z" | "B" | "P" | "M")
                            && (0..i - 1).any(vowel_at)
                    }
                    _ => false,
                };
                if syllabic {
                    out.push('ᵊ');
                    out.push_str(if next == Some("L") { "l" } else { "n" });
                    i += 2;
                    continue;
                }
                // The reduced vowel of "-ed" and "-es" endings: "advocated" -> ...ᵻd.
                if base == "IH" && matches!(next, Some("D" | "Z")) && i + 2 == parsed.len() {
                    out.push('ᵻ');
                    i += 1;
                    continue;
                }
            }
            if base == "IY" && last_vowel && i + 1 == parsed.len() && stress == 2 {
                // A final -y keeps no stress ("ability" -> əbˈɪləTi).
                out.truncate(out.len() - "ˌ".len());
            }
            out.push_str(vowel(base, stress, british, lot));
        } else if let Some(c) = consonant(base) {
            if british && base == "R" && !vowel_at(i + 1) {
                // Non-rhotic: an R before a consonant or at the end is silent.
            } else if !british
                && base == "T"
                && i > 0
                && (vowel_at(i - 1) || parsed[i - 1].0 == "R")
                && unstressed_at(i + 1)
            {
                // The American flap ("water" -> wˈɔTəɹ).
                out.push('T');
            } else {
                out.push_str(c);
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(p: &str) -> String {
        to_kokoro(&p.split(' ').collect::<Vec<_>>(), false, "")
    }

    #[test]
    fn american_matches_misaki_symbols() {
        assert_eq!(us("HH AE1 P IY0"), "hˈæpi");
        assert_eq!(us("W AO1 T ER0"), "wˈɔTəɹ");
        assert_eq!(us("L IH1 T AH0 L"), "lˈɪTᵊl");
        assert_eq!(us("N ER1 S"), "nˈɜɹs");
        assert_eq!(us("G OW1 T"), "ɡˈOt");
        assert_eq!(us("N W IH1 N"), "nwˈɪn");
        assert_eq!(us("T AH0 N AA1 K AH0"), "tənˈɑkə");
        // Word-initial T and T before a stressed vowel stay t.
        assert_eq!(us("AH0 T AE1 K"), "ətˈæk");
    }

    #[test]
    fn british_is_non_rhotic_with_long_vowels() {
        let gb = |p: &str, w: &str| to_kokoro(&p.split(' ').collect::<Vec<_>>(), true, w);
        assert_eq!(gb("W AO1 T ER0", "water"), "wˈɔːtə");
        assert_eq!(gb("N IH1 R", "near"), "nˈɪə");
        assert_eq!(gb("L AA1 T", "lot"), "lˈɒt");
        assert_eq!(gb("F AA1 DH ER0", "father"), "fˈɑːðə");
        assert_eq!(gb("G OW1 T", "goat"), "ɡˈQt");
        assert_eq!(gb("R EH1 D", "red"), "ɹˈɛd");
    }
}
