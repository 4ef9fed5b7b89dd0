//! Phoneme vocabulary: phoneme characters to model token ids.

use std::collections::HashMap;

/// The id map of the model (`vocab.json` of the Kokoro export).
#[derive(Debug, Clone)]
pub struct Vocab {
    map: HashMap<char, i64>,
}

impl Vocab {
    /// Parse `{"vocab": {"a": 43, ...}}` or a bare `{"a": 43, ...}` object.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("vocab is not JSON: {e}"))?;
        let obj = v
            .get("vocab")
            .unwrap_or(&v)
            .as_object()
            .ok_or("vocab must be a JSON object of phoneme -> id")?;
        let mut map = HashMap::with_capacity(obj.len());
        for (k, id) in obj {
            let mut chars = k.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(format!("vocab key {k:?} is not a single character"));
            };
            let id = id
                .as_i64()
                .filter(|i| (1..=1024).contains(i))
                .ok_or_else(|| format!("vocab id of {k:?} must be an integer in 1..=1024"))?;
            map.insert(c, id);
        }
        if map.is_empty() {
            return Err("vocab is empty".into());
        }
        Ok(Self { map })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains(&self, c: char) -> bool {
        self.map.contains_key(&c)
    }

    /// Model input for a phoneme string: `[0, ids..., 0]`. Characters outside the
    /// vocabulary are skipped (as the reference pipeline does); their count is returned.
    pub fn encode_padded(&self, phonemes: &str) -> (Vec<i64>, usize) {
        let mut ids = Vec::with_capacity(phonemes.len() + 2);
        ids.push(0);
        let mut skipped = 0;
        for c in phonemes.chars() {
            match self.map.get(&c) {
                Some(&id) => ids.push(id),
                None => skipped += 1,
            }
        }
        ids.push(0);
        (ids, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_pads_and_skips() {
        let v = Vocab::from_json(r#"{"vocab": {"h": 50, "ə": 83, " ": 16}}"#).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v.encode_padded("hə h?"), (vec![0, 50, 83, 16, 50, 0], 1));
        assert_eq!(v.encode_padded(""), (vec![0, 0], 0));
    }

    #[test]
    fn rejects_bad_vocab() {
        assert!(Vocab::from_json("[]").is_err());
        assert!(Vocab::from_json(r#"{"ab": 1}"#).is_err());
        assert!(Vocab::from_json(r#"{"a": 0}"#).is_err());
        assert!(Vocab::from_json(r#"{"a": "1"}"#).is_err());
        assert!(Vocab::from_json("{}").is_err());
    }
}
