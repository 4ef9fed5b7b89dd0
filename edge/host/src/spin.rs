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

/// The backing store shared by all requests.
#[derive(Debug)]
pub enum Kv {
    Dir(PathBuf),
    Memory(Mutex<HashMap<String, Vec<u8>>>),
}

fn file_name(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

impl Kv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Kv::Dir(d) => match std::fs::read(d.join(file_name(key))) {
                Ok(v) => Ok(Some(v)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.to_string()),
            },
            Kv::Memory(m) => Ok(m
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
                .cloned()),
        }
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        match self {
            Kv::Dir(d) => {
                std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
                let name = file_name(key);
                let tmp = d.join(format!(".{name}.{}", std::process::id()));
                std::fs::write(&tmp, value).map_err(|e| e.to_string())?;
                std::fs::rename(&tmp, d.join(name)).map_err(|e| e.to_string())
            }
            Kv::Memory(m) => {
                m.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.to_string(), value.to_vec());
                Ok(())
            }
        }
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        match self {
            Kv::Dir(d) => match std::fs::remove_file(d.join(file_name(key))) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            },
            Kv::Memory(m) => {
                m.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                Ok(())
            }
        }
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        match self {
            Kv::Dir(d) => {
                let Ok(rd) = std::fs::read_dir(d) else {
                    return Ok(Vec::new());
                };
                Ok(rd
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.') && n.len() % 2 == 0)
                    .filter_map(|n| {
                        let bytes: Option<Vec<u8>> = (0..n.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(&n[i..i + 2], 16).ok())
                            .collect();
                        bytes.and_then(|b| String::from_utf8(b).ok())
                    })
                    .collect())
            }
            Kv::Memory(m) => Ok(m
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned()
                .collect()),
        }
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

    #[test]
    fn dir_and_memory_stores_agree() {
        let dir = std::env::temp_dir().join(format!("kokoro-kv-{}", std::process::id()));
        for kv in [Kv::Dir(dir.clone()), Kv::Memory(Mutex::new(HashMap::new()))] {
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
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
