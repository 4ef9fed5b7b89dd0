#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kokoro_synth::fuzz::request(data));
