//! Response cache over Spin's key-value store (feature `spin`). Every store error
//! degrades to a miss / no-op: the cache never turns a request into an error.

#[cfg(feature = "spin")]
mod imp {
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

    /// Entries are `expiry (u64 LE, unix seconds) || body`.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        let mut v = store()?.get(key).ok().flatten()?;
        if v.len() < 8 {
            return None;
        }
        let expiry = u64::from_le_bytes(v[..8].try_into().ok()?);
        if expiry < now() {
            if let Some(s) = store() {
                let _ = s.delete(key);
            }
            return None;
        }
        v.drain(..8);
        Some(v)
    }

    pub fn put(key: &str, value: &[u8], ttl_secs: u64) {
        if let Some(s) = store() {
            let mut entry = Vec::with_capacity(value.len() + 8);
            entry.extend_from_slice(&now().saturating_add(ttl_secs).to_le_bytes());
            entry.extend_from_slice(value);
            let _ = s.set(key, &entry);
        }
    }
}

#[cfg(not(feature = "spin"))]
mod imp {
    pub fn enabled() -> bool {
        false
    }
    pub fn get(_key: &str) -> Option<Vec<u8>> {
        None
    }
    pub fn put(_key: &str, _value: &[u8], _ttl_secs: u64) {}
}

pub use imp::{enabled, get, put};
