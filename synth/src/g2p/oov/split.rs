//! Splitting an unknown word into parts that may be known, and reading letters.

/// Where a word breaks: separators, letter/digit changes, case changes
/// (`TikTok` -> Tik Tok, `PostgreSQL` -> Postgre SQL, `XMLHttp` -> XML Http,
/// `GPT4o` -> GPT 4 o), and a possessive or plural `'s` as its own part.
pub fn parts(word: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for piece in word.split(['-', '_', '/', '.', '+', '&', '\u{2010}', '\u{2011}']) {
        split_piece(piece, &mut out);
    }
    out.retain(|p| p.chars().any(char::is_alphanumeric));
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Lower,
    Upper,
    Digit,
    Other,
}

fn class(c: char) -> Class {
    if c.is_ascii_digit() {
        Class::Digit
    } else if c.is_uppercase() {
        Class::Upper
    } else if c.is_alphabetic() {
        Class::Lower
    } else {
        Class::Other
    }
}

fn split_piece<'a>(piece: &'a str, out: &mut Vec<&'a str>) {
    // A trailing 's or s' (Nguyen's, APIs'), and an apostrophe inside otherwise.
    let lower_end = piece.to_ascii_lowercase();
    for suffix in ["'s", "\u{2019}s", "s'", "s\u{2019}"] {
        if lower_end.ends_with(suffix) && piece.len() > suffix.len() + 1 {
            let cut = piece.len() - suffix.len();
            split_piece(&piece[..cut], out);
            out.push("'s");
            return;
        }
    }
    if let Some(caps) = plural_initialism(piece) {
        out.push(caps);
        out.push("'s");
        return;
    }
    let chars: Vec<(usize, char)> = piece.char_indices().collect();
    let mut start = 0;
    for i in 1..chars.len() {
        let (at, c) = chars[i];
        let prev = class(chars[i - 1].1);
        let cur = class(c);
        let next = chars.get(i + 1).map(|&(_, n)| class(n));
        let cut = match (prev, cur) {
            (Class::Other, _) | (_, Class::Other) => true,
            (Class::Digit, Class::Digit) => false,
            (Class::Digit, _) | (_, Class::Digit) => true,
            (Class::Lower, Class::Upper) => true,
            // The last capital of a run of 3+ starts the next word ("XMLHttp" ->
            // XML Http); after two it rarely does ("SQLite", "IOError" is rare).
            (Class::Upper, Class::Upper) => next == Some(Class::Lower) && i - start >= 3,
            _ => false,
        };
        if cut {
            out.push(&piece[chars[start].0..at]);
            start = i;
        }
    }
    if let Some(&(s, _)) = chars.get(start) {
        out.push(&piece[s..]);
    }
    // Apostrophes left inside a part (O'Neil) are dropped by `Other` cuts above.
}

/// The initialism of a plural one (`APIs` -> `API`, `GPUs` -> `GPU`).
pub fn plural_initialism(word: &str) -> Option<&str> {
    let stem = word.strip_suffix('s')?;
    (stem.len() >= 2 && stem.len() <= 5 && stem.chars().all(|c| c.is_ascii_uppercase()))
        .then_some(stem)
}

/// Whether a word is read letter by letter: all capitals of up to 5 letters
/// (`SQL`, `HTTP`), or no vowel at all (`mp`, `npm`, `xkcd`).
pub fn reads_as_letters(word: &str) -> bool {
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    if letters == 0 || word.chars().any(|c| !c.is_alphabetic()) {
        return false;
    }
    let caps = word.chars().all(char::is_uppercase);
    let vowel = word
        .chars()
        .any(|c| matches!(c.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u' | 'y'));
    (caps && letters <= 5) || !vowel || letters == 1
}

/// Acronyms people say as words, with a spelling the dictionaries know.
pub const ACRONYM_WORDS: [(&str, &str); 34] = [
    ("AJAX", "ajax"),
    ("ASCII", "askey"),
    ("CAPTCHA", "captcha"),
    ("COBOL", "cobol"),
    ("COVID", "covid"),
    ("CRUD", "crud"),
    ("DARPA", "darpa"),
    ("FIFA", "fifa"),
    ("GIF", "gif"),
    ("GIFS", "gifs"),
    ("GUI", "gooey"),
    ("IKEA", "ikea"),
    ("JPEG", "jay peg"),
    ("JSON", "jason"),
    ("LAN", "lan"),
    ("LIDAR", "lidar"),
    ("NASA", "nasa"),
    ("NATO", "nato"),
    ("OPEC", "opec"),
    ("PIN", "pin"),
    ("PNG", "ping"),
    ("RAM", "ram"),
    ("ROM", "rom"),
    ("SaaS", "sass"),
    ("SCSI", "scuzzy"),
    ("SIM", "sim"),
    ("SWAT", "swat"),
    ("TOML", "tom el"),
    ("UNESCO", "unesco"),
    ("UNICEF", "unicef"),
    ("WAN", "wan"),
    ("WASM", "wazzum"),
    ("WYSIWYG", "wizzy wig"),
    ("YAML", "yammel"),
];

/// The spelling to read an acronym-as-word with, if it is one.
pub fn acronym_word(word: &str) -> Option<&'static str> {
    ACRONYM_WORDS
        .iter()
        .find(|(a, _)| {
            *a == word || (a.eq_ignore_ascii_case(word) && word.chars().all(char::is_uppercase))
        })
        .map(|(_, s)| *s)
}

const LETTERS_US: [&str; 26] = [
    "ˈA",
    "bˈi",
    "sˈi",
    "dˈi",
    "ˈi",
    "ˈɛf",
    "ʤˈi",
    "ˈAʧ",
    "ˈI",
    "ʤˈA",
    "kˈA",
    "ˈɛl",
    "ˈɛm",
    "ˈɛn",
    "ˈO",
    "pˈi",
    "kjˈu",
    "ˈɑɹ",
    "ˈɛs",
    "tˈi",
    "jˈu",
    "vˈi",
    "dˈʌbᵊlju",
    "ˈɛks",
    "wˈI",
    "zˈi",
];

/// A lowercase ASCII letter's name: misaki's American entries, or its British
/// ones (long i and u, and their own O and R; misaki's British Z is zˈiː too).
fn letter_name(c: char, british: bool) -> String {
    let us = LETTERS_US[(c as u8 - b'a') as usize];
    match (british, c) {
        (false, _) => us.to_string(),
        (true, 'o') => "ˈQ".to_string(),
        (true, 'r') => "ˈɑː".to_string(),
        (true, _) => us.replace('i', "iː").replace('u', "uː"),
    }
}

/// A letter without its accent (`é` -> `e`), for the Latin letters people type.
pub fn fold(c: char) -> char {
    match c {
        'à'..='å' | 'ā' | 'ă' | 'ą' => 'a',
        'À'..='Å' | 'Ā' | 'Ă' | 'Ą' => 'A',
        'ç' | 'ć' | 'č' => 'c',
        'Ç' | 'Ć' | 'Č' => 'C',
        'è'..='ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
        'È'..='Ë' | 'Ē' | 'Ė' | 'Ę' | 'Ě' => 'E',
        'ì'..='ï' | 'ī' | 'į' | 'ı' => 'i',
        'Ì'..='Ï' | 'Ī' | 'Į' | 'İ' => 'I',
        'ñ' | 'ń' | 'ň' => 'n',
        'Ñ' | 'Ń' | 'Ň' => 'N',
        'ò'..='ö' | 'ø' | 'ō' | 'ő' => 'o',
        'Ò'..='Ö' | 'Ø' | 'Ō' | 'Ő' => 'O',
        'ù'..='ü' | 'ū' | 'ů' | 'ű' => 'u',
        'Ù'..='Ü' | 'Ū' | 'Ů' | 'Ű' => 'U',
        'ý' | 'ÿ' => 'y',
        'Ý' | 'Ÿ' => 'Y',
        'ś' | 'š' | 'ş' => 's',
        'Ś' | 'Š' | 'Ş' => 'S',
        'ź' | 'ż' | 'ž' => 'z',
        'Ź' | 'Ż' | 'Ž' => 'Z',
        'ł' => 'l',
        'Ł' => 'L',
        'ř' => 'r',
        'Ř' => 'R',
        'ď' => 'd',
        'ť' => 't',
        'ğ' => 'g',
        _ => c,
    }
}

/// The word spelled out, letter by letter (`SQL` -> ˌɛskjˌuˈɛl): every letter but
/// the last with secondary stress, as misaki reads initialisms. Only ASCII letters
/// (after [`fold`]) are spelled; `None` when there are none.
pub fn spell(word: &str, british: bool) -> Option<String> {
    let names: Vec<String> = word
        .chars()
        .map(fold)
        .filter(char::is_ascii_alphabetic)
        .map(|c| letter_name(c.to_ascii_lowercase(), british))
        .collect();
    let (last, rest) = names.split_last()?;
    let mut out: String = rest.iter().map(|n| n.replace('ˈ', "ˌ")).collect();
    out.push_str(last);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_case_digits_separators_and_possessives() {
        let cases: [(&str, &[&str]); 14] = [
            ("TikTok", &["Tik", "Tok"]),
            ("PyTorch", &["Py", "Torch"]),
            ("GitHub", &["Git", "Hub"]),
            ("PostgreSQL", &["Postgre", "SQL"]),
            ("XMLHttpRequest", &["XML", "Http", "Request"]),
            ("GPT4o", &["GPT", "4", "o"]),
            ("mp3", &["mp", "3"]),
            ("iPhone", &["i", "Phone"]),
            ("Kubernetes-native", &["Kubernetes", "native"]),
            ("Nguyen's", &["Nguyen", "'s"]),
            ("APIs'", &["API", "'s"]),
            ("snake_case", &["snake", "case"]),
            ("Kokoro", &["Kokoro"]),
            ("O'Neil", &["O", "Neil"]),
        ];
        for (word, want) in cases {
            assert_eq!(parts(word), want, "{word}");
        }
        assert!(parts("--").is_empty());
    }

    #[test]
    fn letters_rule() {
        for w in ["SQL", "API", "HTTP", "NVDA", "npm", "xkcd", "x", "mp"] {
            assert!(reads_as_letters(w), "{w}");
        }
        for w in ["Kokoro", "NVIDIA", "Nguyen", "Py", "GPT4", ""] {
            assert!(!reads_as_letters(w), "{w}");
        }
    }

    #[test]
    fn letter_names_are_misakis() {
        for (british, gold) in [
            (false, misaki_rs::data::load_us_gold()),
            (true, misaki_rs::data::load_gb_gold()),
        ] {
            for c in 'a'..='z' {
                let entry =
                    serde_json::to_value(&gold[&c.to_ascii_uppercase().to_string()]).unwrap();
                assert_eq!(
                    letter_name(c, british),
                    entry.as_str().unwrap(),
                    "{c} {british}"
                );
            }
        }
    }

    #[test]
    fn spelling() {
        assert_eq!(spell("SQL", false).unwrap(), "ˌɛskjˌuˈɛl");
        assert_eq!(spell("Ré", true).unwrap(), "ˌɑːˈiː");
        assert_eq!(spell("42", false), None);
        assert_eq!(acronym_word("JSON"), Some("jason"));
        assert_eq!(acronym_word("Json"), None);
        assert_eq!(acronym_word("SaaS"), Some("sass"));
    }
}
