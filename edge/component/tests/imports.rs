//! The built component imports exactly what its manifests promise: the default
//! build only `wasi:*` (runs under `wasmtime serve`, Spin and our host); the `spin`
//! build adds Spin's key-value store and variables (what `spin.toml` grants).
//! The `wasi-nn` build adds `wasi:nn` and read-only files (the assets preopen).
//! `make wasm` builds all three into `target/edge-{wasi,spin,nn}.wasm`.

use std::collections::BTreeSet;
use wasmparser::{Parser, Payload};

fn interfaces(file: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let path = format!("{}/../../target/{file}", env!("CARGO_MANIFEST_DIR"));
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}; run `make wasm` first"));
    let (mut imports, mut exports) = (BTreeSet::new(), BTreeSet::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload.expect("valid component") {
            Payload::ComponentSection { .. } | Payload::ModuleSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(s) if depth == 0 => {
                for i in s {
                    imports.insert(i.unwrap().name.name.to_string());
                }
            }
            Payload::ComponentExportSection(s) if depth == 0 => {
                for e in s {
                    exports.insert(e.unwrap().name.name.to_string());
                }
            }
            _ => {}
        }
    }
    (imports, exports)
}

#[test]
fn default_build_imports_only_wasi() {
    let (imports, exports) = interfaces("edge-wasi.wasm");
    assert!(!imports.is_empty());
    let foreign: Vec<_> = imports.iter().filter(|i| !i.starts_with("wasi:")).collect();
    assert!(foreign.is_empty(), "non-wasi imports: {foreign:?}");
    // wasi 0.2.x (semver-compatible within 0.2): outbound HTTP in, the handler out.
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:http/outgoing-handler@0.2.")),
        "{imports:?}"
    );
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2.")),
        "{exports:?}"
    );
    // No filesystem or sockets: the component reaches the world only through wasi:http.
    assert!(
        !imports
            .iter()
            .any(|i| i.starts_with("wasi:filesystem") || i.starts_with("wasi:sockets")),
        "{imports:?}"
    );
}

#[test]
fn spin_build_adds_exactly_key_value_and_variables() {
    let (imports, exports) = interfaces("edge-spin.wasm");
    let foreign: BTreeSet<_> = imports
        .iter()
        .filter(|i| !i.starts_with("wasi:"))
        .cloned()
        .collect();
    let want: BTreeSet<String> = [
        "fermyon:spin/key-value@2.0.0",
        "fermyon:spin/variables@2.0.0",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(foreign, want);
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2."))
    );
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../spin.toml")).unwrap();
    assert!(manifest.contains("key_value_stores = [\"default\"]"));
    assert!(manifest.contains("allowed_outbound_hosts = [\"http://127.0.0.1:8880\"]"));
}

#[test]
fn wasi_nn_build_adds_wasi_nn_and_read_only_files_but_no_spin() {
    let (imports, exports) = interfaces("edge-nn.wasm");
    for want in [
        "wasi:nn/graph@0.2.0-rc-2024-10-28",
        "wasi:nn/inference@0.2.0-rc-2024-10-28",
        "wasi:nn/tensor@0.2.0-rc-2024-10-28",
    ] {
        assert!(imports.contains(want), "{want} missing from {imports:?}");
    }
    // Voice packs and the vocabulary come from the preopened assets directory.
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:filesystem/preopens@0.2.")),
        "{imports:?}"
    );
    assert!(
        !imports
            .iter()
            .any(|i| i.starts_with("fermyon:") || i.starts_with("wasi:sockets")),
        "{imports:?}"
    );
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2.")),
        "{exports:?}"
    );
}
