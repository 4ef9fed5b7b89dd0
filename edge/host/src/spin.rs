//! Spin's key-value store and variables for the component (`fermyon:spin@2.0.0`,
//! WIT in `wit/deps/spin@2.0.0`), so the Spin build of the component runs here too.
//!
//! The store behind the `default` label is a directory (one file per key,
//! written atomically) or, with `--kv-memory`, a map in memory. Every failure is
//! reported to the component as `error::other`; the component degrades to a miss.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wasmtime::component::Resource;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "kokoro:edge-host/spin-services",
    with: {
        "fermyon:spin/key-value.store": StoreHandle,
    },
});

use fermyon::spin::{key_value, variables};

/// A component's open store.
pub struct StoreHandle;

/// Where the entries live.
#[derive(Debug)]
pub enum Backing {
    Dir(PathBuf),
    Memory(Mutex<HashMap<String, Vec<u8>>>),
}

/// What the store knows of each entry, to bound its total size.
#[derive(Debug, Default)]
struct Index {
    /// key -> (bytes, last use, expiry from the entry's header).
    entries: HashMap<String, (usize, u64, u64)>,
    total: usize,
    tick: u64,
    last_sweep: u64,
}

/// The backing store shared by all requests, bounded to `max_bytes` in all: a set
/// that goes over evicts the least recently used entries, and at most once a
/// minute a set also sweeps the entries whose expiry (`kokoro_core::cache_entry`)
/// has passed. Directory writes go to a temp file with a unique name, then a rename.
#[derive(Debug)]
pub struct Kv {
    backing: Backing,
    max_bytes: usize,
    index: Mutex<Index>,
}

fn file_name(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn key_of(name: &str) -> Option<String> {
    if name.starts_with('.') || name.len() % 2 == 1 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..name.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok())
        .collect();
    bytes.and_then(|b| String::from_utf8(b).ok())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

static TEMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Kv {
    /// A store over `backing`; a directory's existing entries are indexed (and
    /// temp files a crash left behind removed).
    pub fn new(backing: Backing, max_bytes: usize) -> Self {
        let mut index = Index::default();
        if let Backing::Dir(d) = &backing
            && let Ok(rd) = std::fs::read_dir(d)
        {
            for e in rd.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    let _ = std::fs::remove_file(e.path());
                    continue;
                }
                let (Some(key), Ok(meta)) = (key_of(&name), e.metadata()) else {
                    continue;
                };
                let mut head = [0u8; 8];
                let expiry = std::fs::File::open(e.path())
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                    .map_or(0, |()| u64::from_le_bytes(head));
                let size = meta.len() as usize;
                index.total += size;
                index.entries.insert(key, (size, 0, expiry));
            }
        }
        let kv = Self {
            backing,
            max_bytes,
            index: Mutex::new(index),
        };
        kv.sweep(unix_now());
        kv.evict(0);
        kv
    }

    /// Bytes stored now.
    pub fn total_bytes(&self) -> usize {
        lock(&self.index).total
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let v = match &self.backing {
            Backing::Dir(d) => match std::fs::read(d.join(file_name(key))) {
                Ok(v) => Some(v),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e.to_string()),
            },
            Backing::Memory(m) => lock(m).get(key).cloned(),
        };
        if v.is_some() {
            let mut ix = lock(&self.index);
            ix.tick += 1;
            let tick = ix.tick;
            if let Some(e) = ix.entries.get_mut(key) {
                e.1 = tick;
            }
        }
        Ok(v)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        if value.len() > self.max_bytes {
            return Err("entry larger than the store".into());
        }
        let now = unix_now();
        if now.saturating_sub(lock(&self.index).last_sweep) >= 60 {
            self.sweep(now);
        }
        // Room first, so the store never holds more than max_bytes.
        self.evict(value.len());
        match &self.backing {
            Backing::Dir(d) => {
                std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
                let name = file_name(key);
                let n = TEMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let tmp = d.join(format!(".{name}.{}.{n}", std::process::id()));
                std::fs::write(&tmp, value).map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    e.to_string()
                })?;
                std::fs::rename(&tmp, d.join(name)).map_err(|e| e.to_string())?;
            }
            Backing::Memory(m) => {
                lock(m).insert(key.to_string(), value.to_vec());
            }
        }
        let expiry = kokoro_core::cache_entry::expiry(value).unwrap_or(0);
        let mut ix = lock(&self.index);
        ix.tick += 1;
        let tick = ix.tick;
        if let Some((old, _, _)) = ix
            .entries
            .insert(key.to_string(), (value.len(), tick, expiry))
        {
            ix.total -= old;
        }
        ix.total += value.len();
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), String> {
        match &self.backing {
            Backing::Dir(d) => match std::fs::remove_file(d.join(file_name(key))) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.to_string()),
                _ => {}
            },
            Backing::Memory(m) => {
                lock(m).remove(key);
            }
        }
        let mut ix = lock(&self.index);
        if let Some((size, _, _)) = ix.entries.remove(key) {
            ix.total -= size;
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.remove(key)
    }

    /// Remove least recently used entries until `incoming` more bytes fit.
    fn evict(&self, incoming: usize) {
        loop {
            let victim = {
                let ix = lock(&self.index);
                if ix.total + incoming <= self.max_bytes {
                    return;
                }
                ix.entries
                    .iter()
                    .min_by_key(|(_, (_, used, _))| *used)
                    .map(|(k, _)| k.clone())
            };
            let Some(k) = victim else { return };
            if self.remove(&k).is_err() {
                // Unremovable (a permissions problem): forget it rather than spin.
                let mut ix = lock(&self.index);
                if let Some((size, _, _)) = ix.entries.remove(&k) {
                    ix.total -= size;
                }
            }
        }
    }

    /// Remove every entry whose expiry has passed.
    fn sweep(&self, now: u64) {
        let expired: Vec<String> = {
            let mut ix = lock(&self.index);
            ix.last_sweep = now;
            ix.entries
                .iter()
                .filter(|(_, (_, _, exp))| *exp < now)
                .map(|(k, _)| k.clone())
                .collect()
        };
        for k in expired {
            let _ = self.remove(&k);
        }
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        Ok(lock(&self.index).entries.keys().cloned().collect())
    }
}

/// Spin state shared by all requests.
pub struct SpinCtx {
    pub kv: Arc<Kv>,
    pub variables: Arc<HashMap<String, String>>,
}

/// What the Spin host functions see of a request's store.
pub struct SpinView<'a> {
    pub ctx: &'a SpinCtx,
    pub table: &'a mut wasmtime::component::ResourceTable,
}

pub struct SpinData;

impl wasmtime::component::HasData for SpinData {
    type Data<'a> = SpinView<'a>;
}

pub trait HasSpin {
    fn spin(&mut self) -> SpinView<'_>;
}

pub fn add_to_linker<T: HasSpin + Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    key_value::add_to_linker::<T, SpinData>(linker, |s| s.spin())?;
    variables::add_to_linker::<T, SpinData>(linker, |s| s.spin())?;
    Ok(())
}

fn other(e: String) -> key_value::Error {
    key_value::Error::Other(e)
}

impl key_value::HostStore for SpinView<'_> {
    fn open(&mut self, label: String) -> Result<Resource<StoreHandle>, key_value::Error> {
        if label != "default" {
            return Err(key_value::Error::NoSuchStore);
        }
        self.table
            .push(StoreHandle)
            .map_err(|e| other(e.to_string()))
    }

    fn get(
        &mut self,
        _s: Resource<StoreHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, key_value::Error> {
        self.ctx.kv.get(&key).map_err(other)
    }

    fn set(
        &mut self,
        _s: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), key_value::Error> {
        self.ctx.kv.set(&key, &value).map_err(other)
    }

    fn delete(&mut self, _s: Resource<StoreHandle>, key: String) -> Result<(), key_value::Error> {
        self.ctx.kv.delete(&key).map_err(other)
    }

    fn exists(&mut self, _s: Resource<StoreHandle>, key: String) -> Result<bool, key_value::Error> {
        self.ctx.kv.get(&key).map(|v| v.is_some()).map_err(other)
    }

    fn get_keys(&mut self, _s: Resource<StoreHandle>) -> Result<Vec<String>, key_value::Error> {
        self.ctx.kv.keys().map_err(other)
    }

    fn drop(&mut self, rep: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl key_value::Host for SpinView<'_> {}

impl variables::Host for SpinView<'_> {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        self.ctx
            .variables
            .get(&name)
            .cloned()
            .ok_or(variables::Error::Undefined(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(dir: &std::path::Path, max: usize) -> [Kv; 2] {
        [
            Kv::new(Backing::Dir(dir.to_path_buf()), max),
            Kv::new(Backing::Memory(Mutex::new(HashMap::new())), max),
        ]
    }

    fn entry(expiry: u64, n: usize) -> Vec<u8> {
        kokoro_core::cache_entry::response(expiry, "audio/wav", &vec![7u8; n]).unwrap()
    }

    #[test]
    fn dir_and_memory_stores_agree() {
        let dir = std::env::temp_dir().join(format!("kokoro-kv-{}", std::process::id()));
        for kv in both(&dir, 1 << 20) {
            assert_eq!(kv.get("a/b").unwrap(), None);
            kv.set("a/b", b"one").unwrap();
            kv.set("c", b"two").unwrap();
            assert_eq!(kv.get("a/b").unwrap().as_deref(), Some(&b"one"[..]));
            let mut keys = kv.keys().unwrap();
            keys.sort();
            assert_eq!(keys, ["a/b", "c"]);
            kv.delete("a/b").unwrap();
            kv.delete("never").unwrap();
            assert_eq!(kv.get("a/b").unwrap(), None);
            kv.delete("c").unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_store_stays_under_its_size_and_evicts_the_least_recently_used() {
        let dir = std::env::temp_dir().join(format!("kokoro-kv-lru-{}", std::process::id()));
        let far = unix_now() + 3600;
        for kv in both(&dir, 10_000) {
            for k in ["a", "b", "c"] {
                kv.set(k, &entry(far, 3000)).unwrap();
            }
            assert!(kv.get("a").unwrap().is_some()); // "b" is now the oldest
            kv.set("d", &entry(far, 3000)).unwrap();
            assert!(kv.total_bytes() <= 10_000, "{}", kv.total_bytes());
            assert!(kv.get("b").unwrap().is_none());
            assert!(kv.get("a").unwrap().is_some() && kv.get("d").unwrap().is_some());
            // The same key rewritten is counted once.
            kv.set("d", &entry(far, 3000)).unwrap();
            assert!(kv.total_bytes() <= 10_000);
            assert!(kv.set("huge", &entry(far, 20_000)).is_err());
            for k in kv.keys().unwrap() {
                kv.delete(&k).unwrap();
            }
            assert_eq!(kv.total_bytes(), 0);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_writers_of_one_key_never_collide() {
        let dir = std::env::temp_dir().join(format!("kokoro-kv-race-{}", std::process::id()));
        let kv = Arc::new(Kv::new(Backing::Dir(dir.clone()), 1 << 24));
        let far = unix_now() + 3600;
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let kv = kv.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| kv.set("same", &entry(far, 1000 + i)))
                        .filter(Result::is_err)
                        .count()
                })
            })
            .collect();
        let failed: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(failed, 0, "a writer lost its temp file to another");
        let v = kv.get("same").unwrap().unwrap();
        assert!((1000..1008).contains(&(v.len() - 10 - "audio/wav".len())));
        assert_eq!(kv.keys().unwrap(), ["same"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn expired_entries_are_swept_and_a_directory_is_reindexed() {
        let dir = std::env::temp_dir().join(format!("kokoro-kv-sweep-{}", std::process::id()));
        let kv = Kv::new(Backing::Dir(dir.clone()), 1 << 20);
        kv.set("old", &entry(1, 100)).unwrap();
        kv.set("new", &entry(unix_now() + 3600, 100)).unwrap();
        std::fs::write(dir.join(".stale.tmp"), b"x").unwrap();
        drop(kv);
        // A restart indexes what is there, drops the expired entry and the temp file.
        let kv = Kv::new(Backing::Dir(dir.clone()), 1 << 20);
        assert_eq!(kv.keys().unwrap(), ["new"]);
        assert!(!dir.join(".stale.tmp").exists());
        kv.sweep(u64::MAX);
        assert!(kv.keys().unwrap().is_empty() && kv.total_bytes() == 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
