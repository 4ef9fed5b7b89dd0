//! Response cache over Spin's key-value store (feature `spin`), in the entry format
//! of `kokoro_core::cache_entry`: a response once, under its normalized key, with
//! its content type; the request-as-sent key an alias to it. Every store error
//! degrades to a miss / no-op: the cache never turns a request into an error. The
//! store's total size and its expired entries are the host's to bound and sweep.

/// A cached response.
pub struct Hit {
    pub content_type: String,
    pub body: Vec<u8>,
}

#[cfg(feature = "spin")]
mod imp {
    use super::Hit;
    use kokoro_core::cache_entry::{self, Entry};
    use spin_sdk::key_value::Store;

    fn store() -> Option<Store> {
        Store::open_default().ok()
    }

    pub fn enabled() -> bool {
        true
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The response under `key`, following one alias.
    pub fn get(key: &str) -> Option<Hit> {
        let s = store()?;
        let v = s.get(key).ok().flatten()?;
        let t = now();
        let target = match cache_entry::decode(&v, t) {
            None => {
                let _ = s.delete(key);
                return None;
            }
            Some(Entry::Response { content_type, body }) => {
                return Some(Hit {
                    content_type: content_type.to_string(),
                    body: body.to_vec(),
                });
            }
            Some(Entry::Alias(k)) => k.to_string(),
        };
        let v = s.get(&target).ok().flatten()?;
        match cache_entry::decode(&v, t)? {
            Entry::Response { content_type, body } => Some(Hit {
                content_type: content_type.to_string(),
                body: body.to_vec(),
            }),
            Entry::Alias(_) => None,
        }
    }

    pub fn put(key: &str, content_type: &str, body: &[u8], ttl_secs: u64) {
        let expiry = now().saturating_add(ttl_secs);
        if let (Some(s), Some(entry)) = (store(), cache_entry::response(expiry, content_type, body))
        {
            let _ = s.set(key, &entry);
        }
    }

    pub fn put_alias(key: &str, target: &str, ttl_secs: u64) {
        if let Some(s) = store() {
            let _ = s.set(
                key,
                &cache_entry::alias(now().saturating_add(ttl_secs), target),
            );
        }
    }
}

#[cfg(not(feature = "spin"))]
mod imp {
    use super::Hit;
    pub fn enabled() -> bool {
        false
    }
    pub fn get(_key: &str) -> Option<Hit> {
        None
    }
    pub fn put(_key: &str, _content_type: &str, _body: &[u8], _ttl_secs: u64) {}
    pub fn put_alias(_key: &str, _target: &str, _ttl_secs: u64) {}
}

pub use imp::{enabled, get, put, put_alias};
