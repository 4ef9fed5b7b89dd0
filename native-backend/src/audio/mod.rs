//! Audio encoders: every format through [`encode::NativeEncoders`] (wav, pcm and
//! flac from `kokoro-synth`; mp3, opus and aac on C libraries here).

pub mod encode;
