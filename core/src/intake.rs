//! Text that arrives a few characters at a time (an LLM writing): where it can be
//! cut into utterances, and which characters of the whole each one speaks.
//!
//! [`Intake::take`] returns the next complete piece, or nothing while the piece
//! under way might still go on. A cut is known to be complete only once the
//! character after its mark has arrived ("3." may become "3.5"), so a sentence
//! end is a mark followed by white space. Two levels:
//!
//! - **sentence**: `.` `!` `?` `…` (closing quotes and brackets may follow), or a
//!   line break. Always a cut, except after a known abbreviation ("Dr.", "e.g.")
//!   or a single capital letter ("J. Smith").
//! - **clause**: `,` `;` `:` and dashes, at least [`MIN_CLAUSE_CHARS`] from the
//!   piece start. A cut only when the caller asks for one eagerly (its listener
//!   is about to run out of audio); otherwise the sentence goes on, which is
//!   what makes streamed speech sound like the sentence sent whole.
//!
//! Text without marks is cut at the last space once it is [`EAGER_MAX_CHARS`]
//! (eager) or [`MAX_CHARS`] long. Nothing inside `[...]` markup or `(...)` is cut.
//! Pieces tile the input: each one's `char_start` counts the characters before
//! it, the white space between pieces belongs to none.

/// Characters from the piece start before a clause mark may end it.
pub const MIN_CLAUSE_CHARS: usize = 10;
/// Without a mark, an eager piece is cut at a space once this long.
pub const EAGER_MAX_CHARS: usize = 100;
/// Without a sentence end, a piece is cut at a clause mark or a space once this
/// long (the chunker's largest window).
pub const MAX_CHARS: usize = 300;

const ABBREVIATIONS: [&str; 17] = [
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "no", "mt", "ft",
    "approx", "inc",
];

/// One piece to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub text: String,
    /// Characters of the whole text before this piece.
    pub char_start: usize,
}

/// The text received and not yet cut.
#[derive(Debug, Default)]
pub struct Intake {
    buf: String,
    /// Characters of the whole text before `buf`.
    offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Space,
    Clause,
    Sentence,
}

impl Intake {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, text: &str) {
        self.buf.push_str(text);
    }

    /// Characters received and not yet cut.
    pub fn pending_chars(&self) -> usize {
        self.buf.chars().count()
    }

    /// Whether anything but white space waits.
    pub fn has_text(&self) -> bool {
        !self.buf.trim().is_empty()
    }

    /// Characters received in all.
    pub fn total_chars(&self) -> usize {
        self.offset + self.pending_chars()
    }

    /// The next complete piece: at the first sentence end (or, when `eager`, the
    /// first clause mark), else by length.
    pub fn take(&mut self, eager: bool) -> Option<Cut> {
        let end = self.cut_at(eager)?;
        Some(self.split(end))
    }

    /// Everything that waits, as one piece (a flush or the end of the text);
    /// `None` when only white space waits (it is consumed).
    pub fn take_all(&mut self) -> Option<Cut> {
        let cut = self.split(self.buf.len());
        (!cut.text.is_empty()).then_some(cut)
    }

    /// Take `buf[..end]` as a piece, trimmed; the white space after it stays.
    fn split(&mut self, end: usize) -> Cut {
        let rest = self.buf.split_off(end);
        let head = std::mem::replace(&mut self.buf, rest);
        let lead = head.len() - head.trim_start().len();
        let char_start = self.offset + head[..lead].chars().count();
        self.offset += head.chars().count();
        Cut {
            text: head.trim().to_string(),
            char_start,
        }
    }

    /// The byte where the next piece ends, if one is complete.
    fn cut_at(&self, eager: bool) -> Option<usize> {
        let start = self.buf.len() - self.buf.trim_start().len();
        let (mut depth_sq, mut depth_par) = (0usize, 0usize);
        let mut chars = 0usize;
        // The best cut seen so far by length: (level, byte end).
        let mut fallback: Option<(Level, usize)> = None;
        let limit = if eager { EAGER_MAX_CHARS } else { MAX_CHARS };
        let s = &self.buf[start..];
        let mut it = s.char_indices().peekable();
        while let Some((i, c)) = it.next() {
            chars += 1;
            match c {
                '[' => depth_sq += 1,
                ']' => depth_sq = depth_sq.saturating_sub(1),
                '(' => depth_par += 1,
                ')' => depth_par = depth_par.saturating_sub(1),
                _ => {}
            }
            let free = depth_sq == 0 && depth_par == 0;
            if free && c == '\n' {
                return Some(start + i);
            }
            let level = match c {
                '.' | '!' | '?' | '…' => Some(Level::Sentence),
                ',' | ';' | ':' | '—' | '–' => Some(Level::Clause),
                _ if c.is_whitespace() => Some(Level::Space),
                _ => None,
            };
            if let (Some(mut level), true) = (level, free) {
                // The mark's end: closing quotes and brackets go with it.
                let mut end = i + c.len_utf8();
                while let Some(&(j, q)) = it.peek() {
                    if matches!(q, '"' | '\'' | '”' | '’' | '»') {
                        end = j + q.len_utf8();
                        chars += 1;
                        it.next();
                    } else {
                        break;
                    }
                }
                // Complete only once the next character is here, and is a space.
                let complete = match s[end..].chars().next() {
                    Some(n) => n.is_whitespace(),
                    None => false,
                };
                if level == Level::Space {
                    // A space ends the word before it: a cut by length only.
                    if chars > 1 {
                        fallback = fallback.max(Some((Level::Space, start + i)));
                    }
                } else if complete {
                    if level == Level::Sentence && abbreviation(&s[..i]) {
                        level = Level::Clause;
                    }
                    let long_enough = chars >= MIN_CLAUSE_CHARS;
                    match level {
                        Level::Sentence => return Some(start + end),
                        Level::Clause if eager && long_enough => return Some(start + end),
                        Level::Clause if long_enough => {
                            fallback = fallback.max(Some((Level::Clause, start + end)));
                        }
                        _ => {}
                    }
                }
            }
            if let (true, Some((_, end))) = (chars >= limit, fallback) {
                return Some(end);
            }
        }
        None
    }
}

/// Whether the word before a period is an abbreviation or an initial.
fn abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"')
        .next()
        .unwrap_or("");
    let mut letters = word.chars();
    if let (Some(c), None) = (letters.next(), letters.next()) {
        return c.is_uppercase();
    }
    let lower = word.to_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(pieces: &[&str], eager: bool) -> (Vec<Cut>, Intake) {
        let mut intake = Intake::new();
        let mut cuts = Vec::new();
        for p in pieces {
            intake.push(p);
            while let Some(c) = intake.take(eager) {
                cuts.push(c);
            }
        }
        (cuts, intake)
    }

    fn texts(cuts: &[Cut]) -> Vec<&str> {
        cuts.iter().map(|c| c.text.as_str()).collect()
    }

    #[test]
    fn a_sentence_is_cut_once_the_next_character_arrives() {
        let (cuts, mut rest) = feed(&["Hel", "lo there", ".", " How", " are you", "?"], false);
        assert_eq!(texts(&cuts), ["Hello there."]);
        assert_eq!(cuts[0].char_start, 0);
        let last = rest.take_all().unwrap();
        assert_eq!(last.text, "How are you?");
        assert_eq!(last.char_start, 13);
        assert!(rest.take_all().is_none());
    }

    #[test]
    fn numbers_abbreviations_and_initials_do_not_end_sentences() {
        let (cuts, _) = feed(
            &["It costs $3.", "50 today. Dr. Who met J. ", "Smith. Done "],
            false,
        );
        assert_eq!(
            texts(&cuts),
            ["It costs $3.50 today.", "Dr. Who met J. Smith."]
        );
    }

    #[test]
    fn clauses_are_cut_only_when_eager_and_long_enough() {
        let text = ["Well, the weather today, as you can see, is fine. Yes"];
        let (lazy, _) = feed(&text, false);
        assert_eq!(
            texts(&lazy),
            ["Well, the weather today, as you can see, is fine."]
        );
        let (eager, _) = feed(&text, true);
        assert_eq!(
            texts(&eager),
            ["Well, the weather today,", "as you can see,", "is fine."]
        );
    }

    #[test]
    fn long_text_without_marks_is_cut_at_a_space() {
        let words = "word ".repeat(40);
        let (eager, _) = feed(&[&words], true);
        assert!(!eager.is_empty());
        assert!(
            eager
                .iter()
                .all(|c| c.text.chars().count() <= EAGER_MAX_CHARS)
        );
        let (lazy, _) = feed(&[&words.repeat(2)], false);
        assert!(lazy.iter().all(|c| c.text.chars().count() <= MAX_CHARS));
        assert!(!lazy.is_empty());
    }

    #[test]
    fn what_waits() {
        let mut intake = Intake::new();
        assert!(!intake.has_text() && intake.pending_chars() == 0);
        intake.push("  ");
        assert!(!intake.has_text());
        assert_eq!(intake.pending_chars(), 2);
        assert!(intake.take_all().is_none());
        intake.push("Añb");
        assert!(intake.has_text());
        assert_eq!((intake.pending_chars(), intake.total_chars()), (3, 5));
        // A clause of exactly MIN_CLAUSE_CHARS (its mark counted) is long enough;
        // one shorter is not.
        let (cuts, _) = feed(&["abcdefgh, rest of it"], true);
        assert!(cuts.is_empty());
        let (cuts, _) = feed(&["abcdefghi, rest"], true);
        assert_eq!(texts(&cuts), ["abcdefghi,"]);
        assert!(abbreviation("see Dr") && abbreviation("(e.g") && abbreviation("J"));
        assert!(!abbreviation("done") && !abbreviation("a"));
    }

    #[test]
    fn markup_and_lines() {
        let (cuts, _) = feed(&["Wait [pause:0.5s. x] here.\nNext line\nmore"], false);
        assert_eq!(texts(&cuts), ["Wait [pause:0.5s. x] here.", "Next line"]);
        let (cuts, _) = feed(&["He said \"stop.\" Then"], false);
        assert_eq!(texts(&cuts), ["He said \"stop.\""]);
    }

    #[test]
    fn pieces_tile_the_input_by_characters() {
        let input = "  Olá, señor. ¿Qué tal?  Bien… gracias.  ";
        let mut intake = Intake::new();
        let mut cuts = Vec::new();
        for c in input.chars() {
            intake.push(&c.to_string());
            while let Some(cut) = intake.take(true) {
                cuts.push(cut);
            }
        }
        cuts.extend(intake.take_all());
        let chars: Vec<char> = input.chars().collect();
        let mut at = 0;
        for c in &cuts {
            assert!(c.char_start >= at);
            assert!(chars[at..c.char_start].iter().all(|c| c.is_whitespace()));
            let n = c.text.chars().count();
            let got: String = chars[c.char_start..c.char_start + n].iter().collect();
            assert_eq!(got, c.text);
            at = c.char_start + n;
        }
        assert!(chars[at..].iter().all(|c| c.is_whitespace()));
        assert_eq!(intake.total_chars(), chars.len());
    }
}
