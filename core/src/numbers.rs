//! English number words: cardinals, ordinals, years, digit strings.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [&str; 7] = [
    "",
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
    "quintillion",
];

fn push_word(out: &mut String, w: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(w);
}

/// 0..=999 without "and" (American style).
fn below_thousand(n: u64, out: &mut String) {
    debug_assert!(n < 1000);
    let (h, rest) = (n / 100, n % 100);
    if h > 0 {
        push_word(out, ONES[h as usize]);
        push_word(out, "hundred");
    }
    if rest == 0 {
        return;
    }
    if rest < 20 {
        push_word(out, ONES[rest as usize]);
    } else {
        let (t, o) = (rest / 10, rest % 10);
        if o == 0 {
            push_word(out, TENS[t as usize]);
        } else {
            push_word(out, &format!("{}-{}", TENS[t as usize], ONES[o as usize]));
        }
    }
}

/// Cardinal words for any `u64`: 1234 -> "one thousand two hundred thirty-four".
pub fn cardinal(n: u64) -> String {
    if n == 0 {
        return ONES[0].to_string();
    }
    let mut groups = Vec::with_capacity(7);
    let mut m = n;
    while m > 0 {
        groups.push(m % 1000);
        m /= 1000;
    }
    let mut out = String::new();
    for (i, g) in groups.iter().enumerate().rev() {
        if *g == 0 {
            continue;
        }
        below_thousand(*g, &mut out);
        if i > 0 {
            push_word(&mut out, SCALES[i]);
        }
    }
    out
}

/// Ordinal words: 1 -> "first", 22 -> "twenty-second", 100 -> "one hundredth".
pub fn ordinal(n: u64) -> String {
    let card = cardinal(n);
    let split = card.rfind([' ', '-']).map_or(0, |i| i + 1);
    let (head, last) = card.split_at(split);
    let last = match last {
        "one" => "first".to_string(),
        "two" => "second".to_string(),
        "three" => "third".to_string(),
        "five" => "fifth".to_string(),
        "eight" => "eighth".to_string(),
        "nine" => "ninth".to_string(),
        "twelve" => "twelfth".to_string(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    format!("{head}{last}")
}

/// Digits read one by one: "0451" -> "zero four five one".
pub fn digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 5);
    for c in s.chars().filter(char::is_ascii_digit) {
        push_word(&mut out, ONES[(c as u8 - b'0') as usize]);
    }
    out
}

/// An unsigned digit string as words: cardinal when it fits and has no leading
/// zero, else digit by digit.
pub fn integer_str(s: &str) -> String {
    let leading_zero = s.len() > 1 && s.starts_with('0');
    match s.parse::<u64>() {
        Ok(n) if !leading_zero => cardinal(n),
        _ => digits(s),
    }
}

/// A year as spoken: 1990 -> "nineteen ninety", 2005 -> "two thousand five",
/// 1905 -> "nineteen oh five", 1900 -> "nineteen hundred", 2024 -> "twenty twenty-four".
pub fn year(n: u64) -> String {
    if !(1000..=9999).contains(&n) {
        return cardinal(n);
    }
    let (hi, lo) = (n / 100, n % 100);
    if n.is_multiple_of(1000) || (hi.is_multiple_of(10) && lo < 10) {
        // 2000, 3000, 2001..2009, 1001..1009
        return cardinal(n);
    }
    let head = cardinal(hi);
    match lo {
        0 => format!("{head} hundred"),
        1..=9 => format!("{head} oh {}", ONES[lo as usize]),
        _ => format!("{head} {}", cardinal(lo)),
    }
}

/// Plural of a year word for decades: "nineteen ninety" -> "nineteen nineties".
pub fn pluralize(words: &str) -> String {
    if let Some(stem) = words.strip_suffix('y') {
        format!("{stem}ies")
    } else if words.ends_with('x') || words.ends_with("ch") || words.ends_with("sh") {
        format!("{words}es")
    } else {
        format!("{words}s")
    }
}

/// A Roman numeral in canonical form (`XIV`, not `IIII` or `VX`), 1..=3999.
pub fn roman(s: &str) -> Option<u64> {
    let value = |c: char| match c {
        'I' => Some(1),
        'V' => Some(5),
        'X' => Some(10),
        'L' => Some(50),
        'C' => Some(100),
        'D' => Some(500),
        'M' => Some(1000),
        _ => None,
    };
    let vals: Vec<u64> = s.chars().map(value).collect::<Option<_>>()?;
    // Each letter adds its value, or subtracts it before a larger one (IV = 5 - 1).
    let mut n: i64 = 0;
    for (i, v) in vals.iter().enumerate() {
        if vals.get(i + 1).is_some_and(|next| next > v) {
            n -= *v as i64;
        } else {
            n += *v as i64;
        }
    }
    let n = u64::try_from(n).ok()?;
    // Canonical only: the numeral must be how `n` is written.
    ((1..=3999).contains(&n) && to_roman(n) == s).then_some(n)
}

fn to_roman(mut n: u64) -> String {
    const TABLE: [(u64, &str); 13] = [
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ];
    let mut out = String::new();
    for (v, r) in TABLE {
        out.push_str(&r.repeat((n / v) as usize));
        n %= v;
    }
    out
}

/// A proper fraction in words: 1/2 -> "one half", 3/4 -> "three quarters", 2/3 ->
/// "two thirds", 1/100 -> "one hundredth". `None` unless 0 < numerator <
/// denominator (24/7 and 3/2 are not read as fractions).
pub fn fraction(num: u64, den: u64) -> Option<String> {
    if den < 2 || num == 0 || num >= den {
        return None;
    }
    let one = match den {
        2 => "half".to_string(),
        4 => "quarter".to_string(),
        _ => ordinal(den),
    };
    Some(if num == 1 && one.starts_with("one ") {
        // 1/100: "one hundredth", not "one one hundredth".
        one
    } else if num == 1 {
        format!("one {one}")
    } else {
        format!("{} {one}s", cardinal(num))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roman_numerals_canonical_only() {
        for (r, n) in [
            ("I", 1),
            ("IV", 4),
            ("IX", 9),
            ("XIV", 14),
            ("XL", 40),
            ("LVII", 57),
            ("XC", 90),
            ("CD", 400),
            ("DC", 600),
            ("CM", 900),
            ("MCMXCIV", 1994),
            ("MMMCMXCIX", 3999),
        ] {
            assert_eq!(roman(r), Some(n), "{r}");
            assert_eq!(to_roman(n), r);
        }
        for r in ["", "IIII", "VX", "IL", "MMMM", "iv", "IVI", "XIIIV", "A"] {
            assert_eq!(roman(r), None, "{r}");
        }
    }

    #[test]
    fn fractions_in_words() {
        assert_eq!(fraction(1, 2).unwrap(), "one half");
        assert_eq!(fraction(3, 4).unwrap(), "three quarters");
        assert_eq!(fraction(1, 3).unwrap(), "one third");
        assert_eq!(fraction(5, 16).unwrap(), "five sixteenths");
        assert_eq!(fraction(1, 100).unwrap(), "one hundredth");
        assert_eq!(fraction(7, 100).unwrap(), "seven one hundredths");
        for (n, d) in [(0, 4), (1, 1), (3, 2), (1, 0), (2, 2)] {
            assert_eq!(fraction(n, d), None, "{n}/{d}");
        }
    }

    #[test]
    fn plurals_of_decade_words() {
        for (one, many) in [
            ("nineteen ninety", "nineteen nineties"),
            ("twenty six", "twenty sixes"),
            ("match", "matches"),
            ("dish", "dishes"),
            ("ten", "tens"),
        ] {
            assert_eq!(pluralize(one), many);
        }
    }

    #[test]
    fn cardinals() {
        for (n, w) in [
            (0, "zero"),
            (7, "seven"),
            (13, "thirteen"),
            (20, "twenty"),
            (42, "forty-two"),
            (100, "one hundred"),
            (101, "one hundred one"),
            (999, "nine hundred ninety-nine"),
            (1000, "one thousand"),
            (1001, "one thousand one"),
            (1234, "one thousand two hundred thirty-four"),
            (1_000_000, "one million"),
            (2_000_300, "two million three hundred"),
            (
                u64::MAX,
                "eighteen quintillion four hundred forty-six quadrillion seven hundred forty-four trillion seventy-three billion seven hundred nine million five hundred fifty-one thousand six hundred fifteen",
            ),
        ] {
            assert_eq!(cardinal(n), w, "{n}");
        }
    }

    #[test]
    fn ordinals() {
        for (n, w) in [
            (1, "first"),
            (2, "second"),
            (3, "third"),
            (4, "fourth"),
            (5, "fifth"),
            (8, "eighth"),
            (9, "ninth"),
            (11, "eleventh"),
            (12, "twelfth"),
            (20, "twentieth"),
            (21, "twenty-first"),
            (100, "one hundredth"),
            (103, "one hundred third"),
        ] {
            assert_eq!(ordinal(n), w, "{n}");
        }
    }

    #[test]
    fn years() {
        for (n, w) in [
            (1990, "nineteen ninety"),
            (1905, "nineteen oh five"),
            (1900, "nineteen hundred"),
            (2000, "two thousand"),
            (2005, "two thousand five"),
            (2010, "twenty ten"),
            (2024, "twenty twenty-four"),
            (1066, "ten sixty-six"),
            (999, "nine hundred ninety-nine"),
        ] {
            assert_eq!(year(n), w, "{n}");
        }
    }

    #[test]
    fn digit_strings() {
        assert_eq!(integer_str("007"), "zero zero seven");
        assert_eq!(integer_str("12"), "twelve");
        assert_eq!(
            integer_str("99999999999999999999999"),
            digits("99999999999999999999999")
        );
        assert_eq!(pluralize("nineteen ninety"), "nineteen nineties");
        assert_eq!(pluralize("nineteen eighty"), "nineteen eighties");
        assert_eq!(pluralize("two thousand"), "two thousands");
    }
}
