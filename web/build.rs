//! The playground's browser core (`kokoro-core-web`, bound by wasm-bindgen) is built
//! by `make wasm` into `target/web-core/`. When it is there it is compiled in and
//! served as `/web/core.js` + `/web/core.wasm`; when it is not (a plain `cargo
//! build`), the page works without the live preview and says so.

use std::path::PathBuf;

const FILES: [(&str, &str); 2] = [
    ("kokoro_core_web.js", "core.js"),
    ("kokoro_core_web_bg.wasm", "core.wasm"),
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kokoro_web_core)");
    println!("cargo::rerun-if-env-changed=KOKORO_WEB_CORE_DIR");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dir = std::env::var_os("KOKORO_WEB_CORE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/web-core"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let mut all = true;
    for (from, to) in FILES {
        let src = dir.join(from);
        println!("cargo::rerun-if-changed={}", src.display());
        match std::fs::read(&src) {
            Ok(bytes) => std::fs::write(out.join(to), bytes).expect("write to OUT_DIR"),
            Err(_) => {
                all = false;
                std::fs::write(out.join(to), b"").expect("write to OUT_DIR");
            }
        }
    }
    if all {
        println!("cargo::rustc-cfg=kokoro_web_core");
    }
}
