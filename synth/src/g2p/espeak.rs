//! espeak-ng (GPL-3.0, behind the `espeak` feature): non-English languages, and
//! out-of-vocabulary English words where the user puts it first in the chain.
//!
//! espeak-ng keeps global state and is not thread-safe: every call holds one lock.

#![allow(unsafe_code)]

use super::G2pError;
use kokoro_core::Lang;
use std::ffi::{CStr, CString, c_void};
use std::sync::Mutex;

static ESPEAK: Mutex<Option<String>> = Mutex::new(None);

/// IPA for `text` in espeak voice `voice`, one clause at a time.
fn ipa(text: &str, voice: &str) -> Result<String, String> {
    let mut state = ESPEAK.lock().unwrap_or_else(|p| p.into_inner());
    if state.is_none() {
        // SAFETY: first call under the lock; a null path uses the system data dir.
        let rate = unsafe {
            espeakng_sys::espeak_Initialize(
                espeakng_sys::espeak_AUDIO_OUTPUT_AUDIO_OUTPUT_SYNCHRONOUS,
                0,
                std::ptr::null(),
                0,
            )
        };
        if rate <= 0 {
            return Err("espeak-ng failed to initialize (is espeak-ng-data installed?)".into());
        }
        *state = Some(String::new());
    }
    if state.as_deref() != Some(voice) {
        let name = CString::new(voice).map_err(|e| e.to_string())?;
        // SAFETY: initialized above; `name` outlives the call; the lock is held.
        let err = unsafe { espeakng_sys::espeak_SetVoiceByName(name.as_ptr()) };
        if err != espeakng_sys::espeak_ERROR_EE_OK {
            return Err(format!("espeak-ng has no voice {voice}"));
        }
        *state = Some(voice.to_string());
    }
    let c = CString::new(text.replace('\0', " ")).map_err(|e| e.to_string())?;
    let mut ptr: *const c_void = c.as_ptr().cast();
    let mut out = String::new();
    // phonememode bit 1: IPA output.
    while !ptr.is_null() {
        // SAFETY: `ptr` points into `c` (NUL-terminated) and espeak advances it,
        // setting it to null at the end; the returned string is valid until the next call.
        let ps = unsafe {
            espeakng_sys::espeak_TextToPhonemes(
                &mut ptr,
                espeakng_sys::espeakCHARS_UTF8 as i32,
                0x02,
            )
        };
        if ps.is_null() {
            break;
        }
        // SAFETY: espeak returns a NUL-terminated string.
        let s = unsafe { CStr::from_ptr(ps) }.to_string_lossy();
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(s.trim());
    }
    Ok(out)
}

/// espeak's IPA to Kokoro's English phoneme set (the substitutions misaki uses).
fn to_kokoro_english(ipa: &str) -> String {
    let mut s = ipa.replace(['\u{0361}', '\u{035c}'], "");
    for (from, to) in [
        ("aɪ", "I"),
        ("aʊ", "W"),
        ("dʒ", "ʤ"),
        ("eɪ", "A"),
        ("tʃ", "ʧ"),
        ("ɔɪ", "Y"),
        ("ə^l", "ᵊl"),
        ("ʲ", ""),
        ("x", "k"),
        ("ç", "k"),
        ("ɐ", "ə"),
        ("ɬ", "l"),
        ("ɜːɹ", "ɜɹ"),
        ("ɜː", "ɜ"),
        ("ɪə", "iə"),
        ("ː", ""),
        ("_", ""),
        ("əl", "ᵊl"),
        ("e", "A"),
        ("o", "ɔ"),
        ("r", "ɹ"),
        ("ɾ", "T"),
        ("ʔ", "t"),
        ("^", ""),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// One English word in Kokoro's phonemes, for the out-of-vocabulary chain.
pub fn english_word(word: &str, british: bool) -> Option<String> {
    let voice = if british { "en-gb" } else { "en-us" };
    ipa(word, voice)
        .ok()
        .map(|p| to_kokoro_english(&p))
        .filter(|p| !p.trim().is_empty())
}

pub fn phonemize(text: &str, lang: Lang) -> Result<String, G2pError> {
    ipa(text, lang.tag())
        .map(|p| p.replace(['\u{0361}', '\u{035c}', '_'], ""))
        .map_err(G2pError::Failed)
}
