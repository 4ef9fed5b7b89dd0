//! Pure-Rust encoders (they build for wasm32-wasip2 too), all streamable: each
//! takes f32 samples (24 kHz mono, [-1, 1]) chunk by chunk and returns the bytes
//! ready so far.
//!
//! - wav: RIFF/WAVE s16le; when streaming (length unknown) the size fields are 0xFFFFFFFF.
//! - pcm: raw s16le.
//! - flac: `flacenc` frames of 4096 samples, 16 bit; the last frame holds the
//!   rest, padded with silence to FLAC's 32-sample minimum when shorter (at most
//!   1.3 ms).
//!
//! The native backend adds mp3, opus and aac (C libraries) on top of these.

use kokoro_core::{AudioFormat, SAMPLE_RATE};

/// A streaming encoder.
pub trait Encoder: Send {
    /// Append the encoding of `pcm` (may buffer a partial frame) to `out`.
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), String>;
    /// Flush everything buffered and close the stream.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String>;
}

/// An encoder for the pure-Rust formats; `None` for formats that need a native
/// library. `total_samples` is known for non-streaming responses (WAV then
/// carries exact sizes).
pub fn pure_encoder(format: AudioFormat, total_samples: Option<usize>) -> Option<Box<dyn Encoder>> {
    Some(match format {
        AudioFormat::Wav => Box::new(Wav::new(total_samples)),
        AudioFormat::Pcm => Box::new(Pcm),
        AudioFormat::Flac => Box::new(Flac::new().ok()?),
        _ => return None,
    })
}

/// Run `enc` over a whole buffer.
pub fn encode_with(mut enc: Box<dyn Encoder>, pcm: &[f32]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(pcm.len() / 2);
    enc.encode(pcm, &mut out)?;
    enc.finish(&mut out)?;
    Ok(out)
}

/// A sample in [-1, 1]; non-finite input becomes silence. Every encoder's
/// input goes through this (LAME aborts the process on non-finite samples).
pub fn clip(x: f32) -> f32 {
    if x.is_finite() {
        x.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// Float sample to s16 with clipping.
pub fn to_i16(x: f32) -> i16 {
    (clip(x) * 32767.0).round() as i16
}

/// Append `pcm` as s16le.
pub fn push_s16le(pcm: &[f32], out: &mut Vec<u8>) {
    out.reserve(pcm.len() * 2);
    for &x in pcm {
        out.extend_from_slice(&to_i16(x).to_le_bytes());
    }
}

pub struct Pcm;

impl Encoder for Pcm {
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), String> {
        push_s16le(pcm, out);
        Ok(())
    }
    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

pub struct Wav {
    total_samples: Option<usize>,
    header_done: bool,
}

impl Wav {
    pub fn new(total_samples: Option<usize>) -> Self {
        Self {
            total_samples,
            header_done: false,
        }
    }
}

/// The 44-byte WAV header; `data_bytes = None` writes 0xFFFFFFFF (unknown length).
pub fn wav_header(data_bytes: Option<u32>) -> [u8; 44] {
    let mut h = [0u8; 44];
    let data = data_bytes.unwrap_or(u32::MAX);
    let riff = data_bytes.map_or(u32::MAX, |d| d.saturating_add(36));
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff.to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(SAMPLE_RATE * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

impl Encoder for Wav {
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), String> {
        if !self.header_done {
            let bytes = self.total_samples.and_then(|n| u32::try_from(n * 2).ok());
            out.extend_from_slice(&wav_header(bytes));
            self.header_done = true;
        }
        push_s16le(pcm, out);
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if !self.header_done {
            self.encode(&[], out)?;
        }
        Ok(())
    }
}

const FLAC_BLOCK: usize = 4096;
/// The smallest block `flacenc` encodes.
const FLAC_MIN_BLOCK: usize = 32;

pub struct Flac {
    config: flacenc::error::Verified<flacenc::config::Encoder>,
    info: flacenc::component::StreamInfo,
    pending: Vec<i32>,
    frame_no: usize,
    header_done: bool,
}

impl Flac {
    pub fn new() -> Result<Self, String> {
        use flacenc::error::Verify;
        let config = flacenc::config::Encoder::default()
            .into_verified()
            .map_err(|e| format!("flac config: {e:?}"))?;
        let info = flacenc::component::StreamInfo::new(SAMPLE_RATE as usize, 1, 16)
            .map_err(|e| format!("flac stream info: {e:?}"))?;
        Ok(Self {
            config,
            info,
            pending: Vec::with_capacity(FLAC_BLOCK * 2),
            frame_no: 0,
            header_done: false,
        })
    }

    fn header(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        use flacenc::component::BitRepr;
        let mut info = self.info.clone();
        // Unknown length and checksum: allowed by the format for streams.
        info.set_block_sizes(FLAC_BLOCK, FLAC_BLOCK)
            .map_err(|e| format!("flac: {e:?}"))?;
        let stream = flacenc::component::Stream::with_stream_info(info);
        let mut sink = flacenc::bitsink::MemSink::<u8>::new();
        stream
            .write(&mut sink)
            .map_err(|e| format!("flac header: {e:?}"))?;
        out.extend_from_slice(sink.as_slice());
        self.header_done = true;
        Ok(())
    }

    fn frames(&mut self, out: &mut Vec<u8>, last: bool) -> Result<(), String> {
        use flacenc::component::BitRepr;
        use flacenc::source::Source;
        let full = self.pending.len() / FLAC_BLOCK * FLAC_BLOCK;
        if last {
            // The final block may be short, but not below FLAC's minimum: pad the
            // rest with silence (a stream whose last frame fails would end the
            // transfer early).
            let rest = self.pending.len() - full;
            if rest > 0 && rest < FLAC_MIN_BLOCK {
                self.pending.resize(full + FLAC_MIN_BLOCK, 0);
            }
        }
        let take = if last { self.pending.len() } else { full };
        let mut pos = 0;
        while pos < take {
            let n = FLAC_BLOCK.min(take - pos);
            let block = &self.pending[pos..pos + n];
            let mut src =
                flacenc::source::MemSource::from_samples(block, 1, 16, SAMPLE_RATE as usize);
            let mut fb =
                flacenc::source::FrameBuf::with_size(1, n).map_err(|e| format!("flac: {e:?}"))?;
            src.read_samples(n, &mut fb)
                .map_err(|e| format!("flac read: {e:?}"))?;
            let frame =
                flacenc::encode_fixed_size_frame(&self.config, &fb, self.frame_no, &self.info)
                    .map_err(|e| format!("flac encode: {e:?}"))?;
            let mut sink = flacenc::bitsink::MemSink::<u8>::new();
            frame
                .write(&mut sink)
                .map_err(|e| format!("flac write: {e:?}"))?;
            out.extend_from_slice(sink.as_slice());
            self.frame_no += 1;
            pos += n;
        }
        self.pending.drain(..take);
        Ok(())
    }
}

impl Encoder for Flac {
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), String> {
        if !self.header_done {
            self.header(out)?;
        }
        self.pending
            .extend(pcm.iter().map(|&x| i32::from(to_i16(x))));
        self.frames(out, false)
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if !self.header_done {
            self.header(out)?;
        }
        self.frames(out, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_formats_only() {
        let pcm: Vec<f32> = (0..9000).map(|i| ((i % 50) as f32 / 50.0) - 0.5).collect();
        for f in AudioFormat::ALL {
            let enc = pure_encoder(f, Some(pcm.len()));
            let pure = matches!(f, AudioFormat::Wav | AudioFormat::Pcm | AudioFormat::Flac);
            assert_eq!(enc.is_some(), pure, "{f:?}");
            if let Some(e) = enc {
                assert!(encode_with(e, &pcm).unwrap().len() > 1000, "{f:?}");
            }
        }
        assert_eq!(to_i16(2.0), i16::MAX);
        assert_eq!(to_i16(-2.0), -i16::MAX);
        assert_eq!(to_i16(f32::NAN), 0);
        assert_eq!(clip(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn flac_ends_whole_whatever_the_remainder() {
        // Every remainder class around the 32-sample minimum, streamed and whole.
        for n in [0, 1, 5, 31, 32, 33, 4095, 4096, 4097, 4096 + 31, 8192 + 7] {
            let pcm: Vec<f32> = (0..n).map(|i| ((i % 40) as f32 / 40.0) - 0.5).collect();
            let whole = encode_with(pure_encoder(AudioFormat::Flac, Some(n)).unwrap(), &pcm);
            assert!(whole.is_ok(), "{n} samples: {whole:?}");
            let mut e = Flac::new().unwrap();
            let mut out = Vec::new();
            for c in pcm.chunks(1000) {
                e.encode(c, &mut out).unwrap();
            }
            assert!(e.finish(&mut out).is_ok(), "{n} samples streamed");
            assert_eq!(&out[..4], b"fLaC");
        }
    }
}
