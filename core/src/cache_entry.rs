//! The edge cache's entry format, shared by the component that writes entries and
//! the host that bounds and sweeps its store:
//!
//! ```text
//! expiry: u64 LE (unix seconds) | kind: u8 | payload
//!   kind 0, a response:  content-type length: u8 | content type | body
//!   kind 1, an alias:    the key whose entry holds the response
//! ```
//!
//! A response is stored once, under its normalized key; the key of the request as
//! sent is an alias to it (a repeat skips normalization without a second copy).

/// A decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    Response {
        content_type: &'a str,
        body: &'a [u8],
    },
    Alias(&'a str),
}

const RESPONSE: u8 = 0;
const ALIAS: u8 = 1;

/// A response entry; `None` if the content type is over 255 bytes.
pub fn response(expiry: u64, content_type: &str, body: &[u8]) -> Option<Vec<u8>> {
    let ct = u8::try_from(content_type.len()).ok()?;
    let mut v = Vec::with_capacity(10 + content_type.len() + body.len());
    v.extend_from_slice(&expiry.to_le_bytes());
    v.push(RESPONSE);
    v.push(ct);
    v.extend_from_slice(content_type.as_bytes());
    v.extend_from_slice(body);
    Some(v)
}

/// An alias entry pointing at `key`.
pub fn alias(expiry: u64, key: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + key.len());
    v.extend_from_slice(&expiry.to_le_bytes());
    v.push(ALIAS);
    v.extend_from_slice(key.as_bytes());
    v
}

/// The expiry of an entry (unix seconds), from its first 8 bytes.
pub fn expiry(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// Decode an entry that has not expired at `now`; `None` for expired or malformed
/// entries (an old-format entry is a miss, never an error).
pub fn decode(bytes: &[u8], now: u64) -> Option<Entry<'_>> {
    if expiry(bytes)? < now {
        return None;
    }
    let payload = bytes.get(9..)?;
    match *bytes.get(8)? {
        RESPONSE => {
            let n = usize::from(*payload.first()?);
            let content_type = std::str::from_utf8(payload.get(1..1 + n)?).ok()?;
            Some(Entry::Response {
                content_type,
                body: &payload[1 + n..],
            })
        }
        ALIAS => std::str::from_utf8(payload).ok().map(Entry::Alias),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_expire() {
        let r = response(100, "text/event-stream", b"data").unwrap();
        assert_eq!(expiry(&r), Some(100));
        assert_eq!(
            decode(&r, 100),
            Some(Entry::Response {
                content_type: "text/event-stream",
                body: b"data"
            })
        );
        assert_eq!(decode(&r, 101), None);
        let a = alias(50, "abc");
        assert_eq!(decode(&a, 10), Some(Entry::Alias("abc")));
        assert_eq!(decode(&a[..8], 10), None);
        assert_eq!(decode(b"short", 0), None);
        let mut bad = a.clone();
        bad[8] = 7;
        assert_eq!(decode(&bad, 0), None);
        assert!(response(1, &"x".repeat(300), b"").is_none());
        let empty = response(1, "audio/wav", b"").unwrap();
        assert_eq!(
            decode(&empty, 0),
            Some(Entry::Response {
                content_type: "audio/wav",
                body: b""
            })
        );
    }
}
