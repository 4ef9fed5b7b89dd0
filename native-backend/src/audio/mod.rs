//! Audio post-processing: loudness normalization (shared, from `kokoro-synth`) and
//! encoders (wav/pcm/flac shared; mp3/opus/aac native).

pub mod encode;
pub use kokoro_synth::loudness;
