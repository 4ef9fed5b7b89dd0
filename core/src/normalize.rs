//! English text normalization v1: turns written forms into speakable words.
//!
//! Groups (each toggleable through [`NormalizeOptions`]): URLs, emails, phone
//! numbers, dates, times, money, percentages, units, years, ordinals, decimals,
//! plain numbers and common abbreviations. Every pattern is a `regex` (finite
//! automata, linear time, no backtracking) compiled once, and each group is one
//! pass over the text, so the cost is linear in the input.

use crate::error::ApiError;
use crate::numbers::{cardinal, digits, integer_str, ordinal, pluralize, year};
use regex::{Captures, Regex};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::LazyLock;

/// Which normalization groups run. All on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NormalizeOptions {
    /// Master switch: `false` passes text through untouched.
    pub enabled: bool,
    pub urls: bool,
    pub emails: bool,
    pub phone_numbers: bool,
    pub dates: bool,
    pub times: bool,
    pub money: bool,
    pub percentages: bool,
    pub units: bool,
    pub years: bool,
    pub ordinals: bool,
    pub decimals: bool,
    pub numbers: bool,
    pub abbreviations: bool,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        Self::all(true)
    }
}

/// Field names of the `normalization` object, in contract order.
pub const NORMALIZATION_FIELDS: [&str; 14] = [
    "enabled",
    "urls",
    "emails",
    "phone_numbers",
    "dates",
    "times",
    "money",
    "percentages",
    "units",
    "years",
    "ordinals",
    "decimals",
    "numbers",
    "abbreviations",
];

impl NormalizeOptions {
    pub fn all(on: bool) -> Self {
        Self {
            enabled: true,
            urls: on,
            emails: on,
            phone_numbers: on,
            dates: on,
            times: on,
            money: on,
            percentages: on,
            units: on,
            years: on,
            ordinals: on,
            decimals: on,
            numbers: on,
            abbreviations: on,
        }
    }

    fn field_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "enabled" => &mut self.enabled,
            "urls" => &mut self.urls,
            "emails" => &mut self.emails,
            "phone_numbers" => &mut self.phone_numbers,
            "dates" => &mut self.dates,
            "times" => &mut self.times,
            "money" => &mut self.money,
            "percentages" => &mut self.percentages,
            "units" => &mut self.units,
            "years" => &mut self.years,
            "ordinals" => &mut self.ordinals,
            "decimals" => &mut self.decimals,
            "numbers" => &mut self.numbers,
            "abbreviations" => &mut self.abbreviations,
            _ => return None,
        })
    }

    /// Parse the request's `normalization` object; absent keys keep their default (on).
    pub fn from_value(v: &Value) -> Result<Self, ApiError> {
        let Value::Object(map) = v else {
            return Err(ApiError::invalid(
                "normalization",
                "invalid_type",
                "'normalization' must be an object of booleans.",
            ));
        };
        let mut opts = Self::default();
        for (k, val) in map {
            let param = format!("normalization.{}", k.chars().take(64).collect::<String>());
            let Some(slot) = opts.field_mut(k) else {
                return Err(ApiError::invalid(
                    &param,
                    "unknown_parameter",
                    format!(
                        "Unknown normalization option; known: {}.",
                        NORMALIZATION_FIELDS.join(", ")
                    ),
                ));
            };
            let Value::Bool(b) = val else {
                return Err(ApiError::invalid(
                    &param,
                    "invalid_type",
                    format!("'{param}' must be a boolean."),
                ));
            };
            *slot = *b;
        }
        Ok(opts)
    }

    /// Bit mask of the switches, for the cache key.
    pub fn bits(&self) -> u16 {
        [
            self.enabled,
            self.urls,
            self.emails,
            self.phone_numbers,
            self.dates,
            self.times,
            self.money,
            self.percentages,
            self.units,
            self.years,
            self.ordinals,
            self.decimals,
            self.numbers,
            self.abbreviations,
        ]
        .iter()
        .enumerate()
        .fold(0u16, |acc, (i, b)| acc | (u16::from(*b) << i))
    }
}

fn re(pattern: &str) -> Regex {
    // Patterns are literals of this file; a test compiles every one of them.
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad normalization pattern {pattern}: {e}"))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTH_ALT: &str = r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)";
const TLDS: &str = r"com|org|net|io|dev|ai|edu|gov|co|uk|de|fr|app|info|biz|us|ca|eu|me|tv";

static URL: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?i)\b(?:https?://|www\.)[^\s<>"]*[^\s<>".,;:!?)\]]|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:{TLDS})\b(?:/[^\s<>"]*[^\s<>".,;:!?)\]])?"#
    ))
});
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:\+1[\s.-]?)?(?:\([0-9]{3}\)\s?|\b[0-9]{3}[\s.-])[0-9]{3}[\s.-][0-9]{4}\b|\+[0-9]{1,3}(?:[\s.-][0-9]{2,4}){2,4}\b",
    )
});
static DATE_ISO: LazyLock<Regex> = LazyLock::new(|| re(r"\b([0-9]{4})-([0-9]{2})-([0-9]{2})\b"));
static DATE_SLASH: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}|[0-9]{2})\b"));
static DATE_MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b{MONTH_ALT}\.?\s+([0-9]{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+([0-9]{{4}})\b)?"
    ))
});
static DATE_DAY_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b([0-9]{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTH_ALT}\b\.?(?:,?\s+([0-9]{{4}})\b)?"
    ))
});
static TIME: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?(?:\s?([AaPp])\.?[Mm]\b\.?)?"));
static TIME_AMPM: LazyLock<Regex> = LazyLock::new(|| re(r"\b([0-9]{1,2})\s?([AaPp])\.?[Mm]\b\.?"));
static MONEY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"([$£€¥])\s?([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?(?:\s?(thousand|million|billion|trillion|[kKmMbB]n?)\b)?",
    )
});
static PERCENT: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+(?:\.[0-9]+)?)\s?%"));
static UNIT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b([0-9]+(?:\.[0-9]+)?)(?:\s?(km/h|m/s|km|cm|mm|mi|ft|kg|mg|lbs?|oz|ml|mph|kph|GB|MB|KB|TB|GHz|MHz|kHz|Hz|ms|min|hrs?|kW|kWh|mAh|°C|°F)\b|(m|g|s|h|l|L|in|x|V|W)\b|\s?(°C|°F|°))",
    )
});
static YEAR_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(in|since|by|from|until|till|of|year|circa|around|before|after|during|early|late|mid|spring|summer|autumn|fall|winter)\s+([0-9]{4})\b",
    )
});
static DECADE: LazyLock<Regex> = LazyLock::new(|| re(r"\b([0-9]{3}0)'?s\b"));
static ORDINAL: LazyLock<Regex> = LazyLock::new(|| re(r"\b([0-9]+)(?:st|nd|rd|th)\b"));
static DECIMAL: LazyLock<Regex> = LazyLock::new(|| re(r"([0-9]+)\.([0-9]+)"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"(-)?([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)"));
static ABBREV: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b(Dr|Mr|Mrs|Ms|Prof|St|Jr|Sr|Mt|Ave|Blvd|Inc|Ltd|Corp|approx|vs|etc|e\.g|i\.e)\.|\s(&)\s")
});

fn month_index(word: &str) -> Option<usize> {
    let w = word.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| m.to_ascii_lowercase().starts_with(&w[..w.len().min(3)]))
}

fn spoken_date(month: usize, day: u64, year_str: Option<&str>) -> String {
    let mut s = format!("{} {}", MONTHS[month], ordinal(day));
    if let Some(y) = year_str.and_then(|y| y.parse::<u64>().ok()) {
        s.push_str(", ");
        s.push_str(&year(y));
    }
    s
}

/// Speak a URL or domain: "docs.rs/serde" -> "docs dot rs slash serde".
fn spoken_url(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|p| lower.starts_with(p).then(|| &url[p.len()..]))
        .unwrap_or(url);
    spell_symbols(rest.trim_end_matches('/'))
}

fn spell_symbols(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    let mut digits_run = String::new();
    let flush = |out: &mut String, run: &mut String| {
        if !run.is_empty() {
            out.push(' ');
            out.push_str(&digits(run));
            out.push(' ');
            run.clear();
        }
    };
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits_run.push(c);
            continue;
        }
        flush(&mut out, &mut digits_run);
        let word = match c {
            '.' => " dot ",
            '/' => " slash ",
            '-' => " dash ",
            '_' => " underscore ",
            '@' => " at ",
            ':' => " colon ",
            '?' => " question mark ",
            '=' => " equals ",
            '&' => " and ",
            '#' => " hash ",
            '%' => " percent ",
            '+' => " plus ",
            '~' => " tilde ",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(word);
    }
    flush(&mut out, &mut digits_run);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn currency(sym: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    // (singular, plural, minor singular, minor plural)
    match sym {
        "£" => ("pound", "pounds", "penny", "pence"),
        "€" => ("euro", "euros", "cent", "cents"),
        "¥" => ("yen", "yen", "sen", "sen"),
        _ => ("dollar", "dollars", "cent", "cents"),
    }
}

fn strip_commas(s: &str) -> Cow<'_, str> {
    if s.contains(',') {
        Cow::Owned(s.replace(',', ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// "3.14" -> "three point one four".
fn decimal_words(int: &str, frac: &str) -> String {
    format!("{} point {}", integer_str(&strip_commas(int)), digits(frac))
}

fn number_words(s: &str) -> String {
    match s.split_once('.') {
        Some((i, f)) => decimal_words(i, f),
        None => integer_str(&strip_commas(s)),
    }
}

fn money(c: &Captures) -> String {
    let (one, many, minor_one, minor_many) = currency(&c[1]);
    let int = strip_commas(&c[2]);
    let scale = c.get(4).map(|m| match m.as_str() {
        "k" | "K" => "thousand",
        "m" | "M" | "mn" | "Mn" => "million",
        "b" | "B" | "bn" | "Bn" => "billion",
        other => match other {
            "thousand" => "thousand",
            "million" => "million",
            "billion" => "billion",
            _ => "trillion",
        },
    });
    if let Some(scale) = scale {
        let amount = match c.get(3) {
            Some(f) => decimal_words(&int, f.as_str()),
            None => integer_str(&int),
        };
        return format!("{amount} {scale} {many}");
    }
    let n = int.parse::<u64>().ok();
    let major = format!(
        "{} {}",
        integer_str(&int),
        if n == Some(1) { one } else { many }
    );
    match c.get(3) {
        Some(f) if f.as_str().len() == 2 => {
            let cents: u64 = f.as_str().parse().unwrap_or(0);
            if cents == 0 {
                major
            } else {
                let unit = if cents == 1 { minor_one } else { minor_many };
                format!("{major} and {} {unit}", cardinal(cents))
            }
        }
        Some(f) => format!("{} {many}", decimal_words(&int, f.as_str())),
        None => major,
    }
}

fn unit_name(u: &str) -> Option<(&'static str, &'static str)> {
    Some(match u {
        "km" => ("kilometer", "kilometers"),
        "m" => ("meter", "meters"),
        "cm" => ("centimeter", "centimeters"),
        "mm" => ("millimeter", "millimeters"),
        "mi" => ("mile", "miles"),
        "ft" => ("foot", "feet"),
        "in" => ("inch", "inches"),
        "kg" => ("kilogram", "kilograms"),
        "g" => ("gram", "grams"),
        "mg" => ("milligram", "milligrams"),
        "lb" | "lbs" => ("pound", "pounds"),
        "oz" => ("ounce", "ounces"),
        "l" | "L" => ("liter", "liters"),
        "ml" => ("milliliter", "milliliters"),
        "km/h" | "kph" => ("kilometer per hour", "kilometers per hour"),
        "m/s" => ("meter per second", "meters per second"),
        "mph" => ("mile per hour", "miles per hour"),
        "GB" => ("gigabyte", "gigabytes"),
        "MB" => ("megabyte", "megabytes"),
        "KB" => ("kilobyte", "kilobytes"),
        "TB" => ("terabyte", "terabytes"),
        "GHz" => ("gigahertz", "gigahertz"),
        "MHz" => ("megahertz", "megahertz"),
        "kHz" => ("kilohertz", "kilohertz"),
        "Hz" => ("hertz", "hertz"),
        "ms" => ("millisecond", "milliseconds"),
        "s" => ("second", "seconds"),
        "min" => ("minute", "minutes"),
        "h" | "hr" | "hrs" => ("hour", "hours"),
        "kW" => ("kilowatt", "kilowatts"),
        "kWh" => ("kilowatt hour", "kilowatt hours"),
        "W" => ("watt", "watts"),
        "V" => ("volt", "volts"),
        "mAh" => ("milliamp hour", "milliamp hours"),
        "x" => ("times", "times"),
        "°C" => ("degree Celsius", "degrees Celsius"),
        "°F" => ("degree Fahrenheit", "degrees Fahrenheit"),
        "°" => ("degree", "degrees"),
        _ => return None,
    })
}

fn units(c: &Captures) -> String {
    let value = &c[1];
    let unit = c
        .get(2)
        .or_else(|| c.get(3))
        .or_else(|| c.get(4))
        .map_or("", |m| m.as_str());
    match unit_name(unit) {
        Some((one, many)) => {
            let name = if value == "1" { one } else { many };
            format!("{} {name}", number_words(value))
        }
        None => c[0].to_string(),
    }
}

fn time(c: &Captures) -> Option<String> {
    let h: u64 = c[1].parse().ok()?;
    let m: u64 = c[2].parse().ok()?;
    let s: Option<u64> = c.get(3).and_then(|x| x.as_str().parse().ok());
    let ampm = c.get(4).map(|x| x.as_str().to_ascii_lowercase());
    if h > 24 || m > 59 || s.is_some_and(|s| s > 59) || (ampm.is_some() && !(1..=12).contains(&h)) {
        return None;
    }
    let mut out = cardinal(h);
    match (m, &ampm) {
        (0, Some(_)) => {}
        (0, None) => out.push_str(if h == 0 { " hundred" } else { " o'clock" }),
        (1..=9, _) => {
            out.push_str(" oh ");
            out.push_str(&cardinal(m));
        }
        _ => {
            out.push(' ');
            out.push_str(&cardinal(m));
        }
    }
    if let Some(s) = s {
        out.push_str(" and ");
        out.push_str(&cardinal(s));
        out.push_str(if s == 1 { " second" } else { " seconds" });
    }
    if let Some(p) = ampm {
        out.push_str(if p == "a" { " a m" } else { " p m" });
    }
    Some(out)
}

fn abbreviation(c: &Captures, hay: &str) -> String {
    if c.get(2).is_some() {
        return " and ".to_string();
    }
    let word = match &c[1] {
        "Dr" => "Doctor",
        "Mr" => "Mister",
        "Mrs" => "Missus",
        "Ms" => "Miz",
        "Prof" => "Professor",
        "St" => "Saint",
        "Jr" => "Junior",
        "Sr" => "Senior",
        "Mt" => "Mount",
        "Ave" => "Avenue",
        "Blvd" => "Boulevard",
        "Inc" => "Incorporated",
        "Ltd" => "Limited",
        "Corp" => "Corporation",
        "approx" => "approximately",
        "vs" => "versus",
        "e.g" => "for example",
        "i.e" => "that is",
        _ => {
            // "etc." keeps its period when it ends a sentence.
            let end = c.get(0).map_or(0, |m| m.end());
            let rest = hay[end..].trim_start();
            let ends_sentence = rest.is_empty() || rest.starts_with(|ch: char| ch.is_uppercase());
            return if ends_sentence {
                "et cetera."
            } else {
                "et cetera"
            }
            .to_string();
        }
    };
    word.to_string()
}

/// Run one pass if enabled; `f` returns `None` to leave a match as it was.
///
/// Takes the `LazyLock` itself: a disabled pass must not force (compile) its regex.
fn pass<'t>(
    on: bool,
    text: Cow<'t, str>,
    re: &LazyLock<Regex>,
    mut f: impl FnMut(&Captures, &str) -> Option<String>,
) -> Cow<'t, str> {
    if !on {
        return text;
    }
    let re: &Regex = re;
    if !re.is_match(&text) {
        return text;
    }
    let hay: &str = &text;
    let out = re.replace_all(hay, |c: &Captures| {
        f(c, hay).unwrap_or_else(|| c[0].to_string())
    });
    Cow::Owned(out.into_owned())
}

const TLD_MARKS: [&str; 21] = [
    ".com", ".org", ".net", ".io", ".dev", ".ai", ".edu", ".gov", ".co", ".uk", ".de", ".fr",
    ".app", ".info", ".biz", ".us", ".ca", ".eu", ".me", ".tv", "://",
];
const ABBREV_MARKS: [&str; 20] = [
    "Dr.", "Mr.", "Mrs.", "Ms.", "Prof.", "St.", "Jr.", "Sr.", "Mt.", "Ave.", "Blvd.", "Inc.",
    "Ltd.", "Corp.", "approx.", "vs.", "etc.", "e.g.", "i.e.", "&",
];

/// Normalize `text` for speech according to `opts`.
///
/// Cheap substring checks skip groups that cannot match, so plain prose compiles
/// and runs no regex at all (this matters in the edge component, which starts
/// from a fresh instance, and so fresh `LazyLock`s, on every request).
pub fn normalize<'t>(text: &'t str, opts: &NormalizeOptions) -> Cow<'t, str> {
    if !opts.enabled {
        return Cow::Borrowed(text);
    }
    let has_digit = text.bytes().any(|b| b.is_ascii_digit());
    // The URL pattern is case-insensitive, so its prefilter is too.
    let url_like = || {
        let lower = text.to_ascii_lowercase();
        lower.contains("www.") || TLD_MARKS.iter().any(|m| lower.contains(m))
    };
    let n_digits = text.bytes().filter(u8::is_ascii_digit).count();
    let has = |cs: &[char]| text.contains(cs);
    let month = || MONTHS.iter().any(|m| text.contains(&m[..3]));
    let ampm = || {
        let b = text.as_bytes();
        b.windows(2).any(|w| {
            matches!(w[0], b'a' | b'A' | b'p' | b'P') && matches!(w[1], b'm' | b'M' | b'.')
        })
    };
    let opts = &NormalizeOptions {
        urls: opts.urls && url_like(),
        emails: opts.emails && text.contains('@'),
        phone_numbers: opts.phone_numbers && n_digits >= 5,
        dates: opts.dates && has_digit && (has(&['-', '/']) || month()),
        times: opts.times && has_digit && (text.contains(':') || ampm()),
        money: opts.money && has_digit && has(&['$', '£', '€', '¥']),
        percentages: opts.percentages && has_digit && text.contains('%'),
        units: opts.units && has_digit,
        years: opts.years && has_digit,
        ordinals: opts.ordinals && has_digit,
        decimals: opts.decimals && has_digit && text.contains('.'),
        numbers: opts.numbers && has_digit,
        abbreviations: opts.abbreviations && ABBREV_MARKS.iter().any(|m| text.contains(m)),
        ..*opts
    };
    run_passes(text, opts)
}

/// Every enabled pass, without the prefilter (the prefilter must not change results).
#[doc(hidden)]
pub fn run_passes<'t>(text: &'t str, opts: &NormalizeOptions) -> Cow<'t, str> {
    if !opts.enabled {
        return Cow::Borrowed(text);
    }
    let t = Cow::Borrowed(text);
    let t = pass(opts.emails, t, &EMAIL, |c, _| Some(spell_symbols(&c[0])));
    let t = pass(opts.urls, t, &URL, |c, _| Some(spoken_url(&c[0])));
    let t = pass(opts.phone_numbers, t, &PHONE, |c, _| {
        let groups: Vec<String> = c[0]
            .split(|ch: char| !ch.is_ascii_digit())
            .filter(|g| !g.is_empty())
            .map(digits)
            .collect();
        Some(groups.join(", "))
    });
    let t = pass(opts.dates, t, &DATE_ISO, |c, _| {
        let (m, d): (usize, u64) = (c[2].parse().ok()?, c[3].parse().ok()?);
        ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| spoken_date(m - 1, d, Some(&c[1])))
    });
    let t = pass(opts.dates, t, &DATE_SLASH, |c, _| {
        let (a, b): (u64, u64) = (c[1].parse().ok()?, c[2].parse().ok()?);
        // Month first (en-US) unless the first field cannot be a month.
        let (m, d) = if a > 12 { (b, a) } else { (a, b) };
        let y = &c[3];
        let full_year = if y.len() == 2 {
            format!("20{y}")
        } else {
            y.to_string()
        };
        ((1..=12).contains(&m) && (1..=31).contains(&d))
            .then(|| spoken_date(m as usize - 1, d, Some(&full_year)))
    });
    let t = pass(opts.dates, t, &DATE_MONTH_DAY, |c, _| {
        let m = month_index(&c[1])?;
        let d: u64 = c[2].parse().ok()?;
        (1..=31)
            .contains(&d)
            .then(|| spoken_date(m, d, c.get(3).map(|y| y.as_str())))
    });
    let t = pass(opts.dates, t, &DATE_DAY_MONTH, |c, _| {
        let d: u64 = c[1].parse().ok()?;
        let m = month_index(&c[2])?;
        (1..=31).contains(&d).then(|| {
            let mut s = format!("the {} of {}", ordinal(d), MONTHS[m]);
            if let Some(y) = c.get(3).and_then(|y| y.as_str().parse().ok()) {
                s.push_str(", ");
                s.push_str(&year(y));
            }
            s
        })
    });
    let t = pass(opts.times, t, &TIME, |c, _| time(c));
    let t = pass(opts.times, t, &TIME_AMPM, |c, _| {
        let h: u64 = c[1].parse().ok()?;
        let p = if c[2].eq_ignore_ascii_case("a") {
            "a m"
        } else {
            "p m"
        };
        (1..=12)
            .contains(&h)
            .then(|| format!("{} {p}", cardinal(h)))
    });
    let t = pass(opts.money, t, &MONEY, |c, _| Some(money(c)));
    let t = pass(opts.percentages, t, &PERCENT, |c, _| {
        Some(format!("{} percent", number_words(&c[1])))
    });
    let t = pass(opts.years, t, &DECADE, |c, _| {
        let y: u64 = c[1].parse().ok()?;
        (1000..=2990).contains(&y).then(|| pluralize(&year(y)))
    });
    let t = pass(opts.years, t, &YEAR_CONTEXT, |c, _| {
        let y: u64 = c[2].parse().ok()?;
        (1000..=2099)
            .contains(&y)
            .then(|| format!("{} {}", &c[1], year(y)))
    });
    let t = pass(opts.units, t, &UNIT, |c, _| Some(units(c)));
    let t = pass(opts.ordinals, t, &ORDINAL, |c, _| {
        Some(match c[1].parse::<u64>() {
            Ok(n) => ordinal(n),
            Err(_) => digits(&c[1]),
        })
    });
    let t = pass(opts.decimals, t, &DECIMAL, |c, _| {
        Some(decimal_words(&c[1], &c[2]))
    });
    let t = pass(opts.numbers, t, &NUMBER, |c, hay| {
        let start = c.get(0).map_or(0, |m| m.start());
        let minus = c.get(1).is_some();
        // A hyphen is a minus sign only at the start or after whitespace/brackets.
        let sign_ok = minus
            && hay[..start]
                .chars()
                .next_back()
                .is_none_or(|p| p.is_whitespace() || "([{".contains(p));
        let end = c.get(0).map_or(0, |m| m.end());
        let words = integer_str(&strip_commas(&c[2]));
        let mut out = match (minus, sign_ok) {
            (true, true) => format!("minus {words}"),
            (true, false) => format!("-{words}"),
            _ => words,
        };
        // Digits glued to letters ("mp3", "3D") become separate words.
        if hay[..start]
            .chars()
            .next_back()
            .is_some_and(char::is_alphabetic)
        {
            out.insert(0, ' ');
        }
        if hay[end..].chars().next().is_some_and(char::is_alphabetic) {
            out.push(' ');
        }
        Some(out)
    });
    pass(opts.abbreviations, t, &ABBREV, |c, hay| {
        Some(abbreviation(c, hay))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, want: &str) {
        assert_eq!(
            normalize(input, &NormalizeOptions::default()),
            want,
            "input: {input}"
        );
    }

    #[test]
    fn every_unit_is_spoken() {
        // (symbol, one, many): "1<symbol>" says one; "2 <symbol>" says many where
        // the symbol is unambiguous on its own (not m, in, g, s, h, l, W, V, x).
        let units = [
            ("km", "kilometer", "kilometers"),
            ("m", "meter", ""),
            ("cm", "centimeter", "centimeters"),
            ("mm", "millimeter", "millimeters"),
            ("mi", "mile", "miles"),
            ("ft", "foot", "feet"),
            ("in", "inch", ""),
            ("kg", "kilogram", "kilograms"),
            ("g", "gram", ""),
            ("mg", "milligram", "milligrams"),
            ("lb", "pound", "pounds"),
            ("lbs", "pound", "pounds"),
            ("oz", "ounce", "ounces"),
            ("l", "liter", ""),
            ("L", "liter", ""),
            ("ml", "milliliter", "milliliters"),
            ("km/h", "kilometer per hour", "kilometers per hour"),
            ("kph", "kilometer per hour", "kilometers per hour"),
            ("m/s", "meter per second", "meters per second"),
            ("mph", "mile per hour", "miles per hour"),
            ("GB", "gigabyte", "gigabytes"),
            ("MB", "megabyte", "megabytes"),
            ("KB", "kilobyte", "kilobytes"),
            ("TB", "terabyte", "terabytes"),
            ("GHz", "gigahertz", "gigahertz"),
            ("MHz", "megahertz", "megahertz"),
            ("kHz", "kilohertz", "kilohertz"),
            ("Hz", "hertz", "hertz"),
            ("ms", "millisecond", "milliseconds"),
            ("s", "second", ""),
            ("min", "minute", "minutes"),
            ("h", "hour", ""),
            ("hr", "hour", "hours"),
            ("hrs", "hour", "hours"),
            ("kW", "kilowatt", "kilowatts"),
            ("kWh", "kilowatt hour", "kilowatt hours"),
            ("W", "watt", ""),
            ("V", "volt", ""),
            ("mAh", "milliamp hour", "milliamp hours"),
            ("x", "times", ""),
            ("°C", "degree Celsius", "degrees Celsius"),
            ("°F", "degree Fahrenheit", "degrees Fahrenheit"),
            ("°", "degree", "degrees"),
        ];
        for (sym, one, many) in units {
            check(&format!("1{sym}"), &format!("one {one}"));
            let spaced = format!("It is 2 {sym} long.");
            if many.is_empty() {
                check(&spaced, &format!("It is two {sym} long."));
            } else {
                check(&spaced, &format!("It is two {many} long."));
            }
        }
    }

    #[test]
    fn every_abbreviation_and_symbol_is_spoken() {
        for (abbr, word) in [
            ("Dr", "Doctor"),
            ("Mr", "Mister"),
            ("Mrs", "Missus"),
            ("Ms", "Miz"),
            ("Prof", "Professor"),
            ("St", "Saint"),
            ("Jr", "Junior"),
            ("Sr", "Senior"),
            ("Mt", "Mount"),
            ("Ave", "Avenue"),
            ("Blvd", "Boulevard"),
            ("Inc", "Incorporated"),
            ("Ltd", "Limited"),
            ("Corp", "Corporation"),
            ("approx", "approximately"),
            ("vs", "versus"),
            ("e.g", "for example"),
            ("i.e", "that is"),
        ] {
            check(&format!("{abbr}. Smith"), &format!("{word} Smith"));
        }
        check(
            "see example.com/a?b=c&d#e%f+g~h_i:j",
            "see example dot com slash a question mark b equals c and d hash e percent f \
             plus g tilde h underscore i colon j",
        );
        check("¥500", "five hundred yen");
        check("¥1.01", "one yen and one sen");
        check("$5 thousand", "five thousand dollars");
        check("at 12:30:01 pm", "at twelve thirty and one second p m");
    }

    #[test]
    fn table() {
        let cases = [
            ("I have 3 apples.", "I have three apples."),
            (
                "It costs $1,234.56 today.",
                "It costs one thousand two hundred thirty-four dollars and fifty-six cents today.",
            ),
            ("Pay $1 now", "Pay one dollar now"),
            ("£5.01", "five pounds and one penny"),
            ("€20", "twenty euros"),
            ("$2.5 million", "two point five million dollars"),
            ("$3bn", "three billion dollars"),
            ("50% off", "fifty percent off"),
            ("12.5 %", "twelve point five percent"),
            ("The 1st and 22nd", "The first and twenty-second"),
            ("pi is 3.14", "pi is three point one four"),
            (
                "On 2024-01-15 we met",
                "On January fifteenth, twenty twenty-four we met",
            ),
            (
                "Due 12/25/2023.",
                "Due December twenty-fifth, twenty twenty-three.",
            ),
            (
                "Born 25/12/1990",
                "Born December twenty-fifth, nineteen ninety",
            ),
            ("March 3rd, 2021", "March third, twenty twenty-one"),
            ("Jan 5", "January fifth"),
            (
                "on 4 July 1776",
                "on the fourth of July, seventeen seventy-six",
            ),
            ("at 3:30 pm", "at three thirty p m"),
            ("at 7 a.m.", "at seven a m"),
            ("at 14:05", "at fourteen oh five"),
            ("at 9:00", "at nine o'clock"),
            ("at 00:00", "at zero hundred"),
            (
                "in 1990 and since 2005",
                "in nineteen ninety and since two thousand five",
            ),
            ("the 1980s", "the nineteen eighties"),
            ("1990 apples", "one thousand nine hundred ninety apples"),
            (
                "Call 555-123-4567",
                "Call five five five, one two three, four five six seven",
            ),
            (
                "Call (555) 123-4567.",
                "Call five five five, one two three, four five six seven.",
            ),
            (
                "+44 20 7946 0958",
                "four four, two zero, seven nine four six, zero nine five eight",
            ),
            (
                "Mail john.doe@example.com now",
                "Mail john dot doe at example dot com now",
            ),
            ("See https://docs.rs/serde.", "See docs dot rs slash serde."),
            ("Visit example.com today", "Visit example dot com today"),
            (
                "www.kokoro-tts.dev/v1",
                "www dot kokoro dash tts dot dev slash v one",
            ),
            (
                "Run 5 km in 30 min",
                "Run five kilometers in thirty minutes",
            ),
            ("1 kg", "one kilogram"),
            ("It's 20°C", "It's twenty degrees Celsius"),
            ("a 2x speedup", "a two times speedup"),
            ("6ft tall", "six feet tall"),
            (
                "Dr. Smith vs. Mr. Jones",
                "Doctor Smith versus Mister Jones",
            ),
            (
                "apples, pears, etc. and more",
                "apples, pears, et cetera and more",
            ),
            ("apples, pears, etc.", "apples, pears, et cetera."),
            ("e.g. this", "for example this"),
            ("salt & pepper", "salt and pepper"),
            ("-5 degrees", "minus five degrees"),
            ("pages 10-20", "pages ten-twenty"),
            ("007", "zero zero seven"),
            ("1,000,000 people", "one million people"),
            ("mp3 files", "mp three files"),
            ("No digits here.", "No digits here."),
            ("13/13/2020", "thirteen/thirteen/two thousand twenty"),
        ];
        for (i, w) in cases {
            check(i, w);
        }
    }

    #[test]
    fn prefilter_agrees_with_every_pass_on_edge_cases() {
        let o = NormalizeOptions::default();
        for s in [
            "+1 23 45",
            "call +44 20 7946",
            "http://localhost:8080",
            "A.iO",
            "WWW.X.COM",
            "a\t&\nb",
            "7 a.m.",
            "7 PM",
            "3:30",
            "Sept 5",
            "5 June 2020",
            "1/2/2003",
            "2020-01-02",
            "€3",
            "¥9",
            "50%",
            "1.5",
            "Dr. Who",
            "e.g. x",
            "plain words only.",
            "",
        ] {
            assert_eq!(normalize(s, &o), run_passes(s, &o), "{s:?}");
        }
    }

    #[test]
    fn groups_toggle() {
        let only = |f: fn(&mut NormalizeOptions)| {
            let mut o = NormalizeOptions::all(false);
            f(&mut o);
            o
        };
        let o = only(|o| o.money = true);
        assert_eq!(normalize("$5 and 7", &o), "five dollars and 7");
        let o = only(|o| o.percentages = true);
        assert_eq!(normalize("5% and 7", &o), "five percent and 7");
        let o = only(|o| o.urls = true);
        assert_eq!(normalize("a.com 7", &o), "a dot com 7");
        let o = NormalizeOptions {
            enabled: false,
            ..Default::default()
        };
        assert_eq!(normalize("$5 Dr. 3", &o), "$5 Dr. 3");
        let o = NormalizeOptions {
            abbreviations: false,
            ..Default::default()
        };
        assert_eq!(normalize("Dr. 3", &o), "Dr. three");
    }

    #[test]
    fn options_from_json() {
        let o = NormalizeOptions::from_value(&serde_json::json!({"urls": false, "enabled": true}))
            .unwrap();
        assert!(!o.urls && o.emails && o.enabled);
        assert_ne!(o.bits(), NormalizeOptions::default().bits());
        let e = NormalizeOptions::from_value(&serde_json::json!({"urls": "no"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("normalization.urls"));
        assert_eq!(NORMALIZATION_FIELDS.len(), 14);
        let mut o = NormalizeOptions::default();
        for f in NORMALIZATION_FIELDS {
            *o.field_mut(f).unwrap() = false;
        }
        assert_eq!(o.bits(), 0);
    }

    #[test]
    fn adversarial_input_is_linear() {
        // Patterns that would explode a backtracking engine; regex is linear.
        let s = "1".repeat(20_000) + &"-1".repeat(5_000) + &"a.".repeat(5_000) + "@";
        let out = normalize(&s, &NormalizeOptions::default());
        assert!(!out.chars().any(|c| c.is_ascii_digit()));
    }
}
