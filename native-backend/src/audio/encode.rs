//! Encoders for every response format, all streamable: each takes f32 samples
//! (24 kHz mono, [-1, 1]) chunk by chunk and returns the bytes ready so far.
//!
//! - wav, pcm, flac: pure Rust, from `kokoro-synth` (shared with the wasi-nn edge).
//! - mp3: LAME (vendored by `mp3lame-sys`), 64 kbit/s CBR, MPEG-2 layer III at 24 kHz.
//! - opus: libopus (the system library) in Ogg, 20 ms frames, one page per chunk.
//! - aac: Fraunhofer FDK AAC (vendored by `fdk-aac-sys`), AAC-LC 64 kbit/s in ADTS.

use kokoro_core::{AudioFormat, SAMPLE_RATE};
use kokoro_synth::encode::{Encoder, clip, pure_encoder, to_i16};
use kokoro_synth::pipeline::Encoders;

/// Every format: the pure-Rust ones from `kokoro-synth`, mp3/opus/aac here.
pub struct NativeEncoders;

impl Encoders for NativeEncoders {
    fn encoder(
        &self,
        format: AudioFormat,
        total_samples: Option<usize>,
    ) -> Result<Box<dyn Encoder>, String> {
        if let Some(e) = pure_encoder(format, total_samples) {
            return Ok(e);
        }
        Ok(match format {
            AudioFormat::Mp3 => Box::new(Mp3::new()?),
            AudioFormat::Opus => Box::new(Opus::new()?),
            AudioFormat::Aac => Box::new(Aac::new()?),
            AudioFormat::Wav | AudioFormat::Pcm | AudioFormat::Flac => {
                return Err(format!("{format:?} encoder failed to start"));
            }
        })
    }
}

struct Mp3 {
    lame: mp3lame_encoder::Encoder,
}

impl Mp3 {
    fn new() -> Result<Self, String> {
        use mp3lame_encoder::{Bitrate, Builder, Mode, Quality};
        let e = |e| format!("mp3 encoder: {e:?}");
        let lame = Builder::new()
            .ok_or("mp3 encoder: cannot allocate LAME")?
            .with_num_channels(1)
            .map_err(e)?
            .with_sample_rate(SAMPLE_RATE)
            .map_err(e)?
            .with_brate(Bitrate::Kbps64)
            .map_err(e)?
            .with_mode(Mode::Mono)
            .map_err(e)?
            .with_quality(Quality::Good)
            .map_err(e)?
            .build()
            .map_err(e)?;
        Ok(Self { lame })
    }
}

impl Encoder for Mp3 {
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), String> {
        // LAME asserts on out-of-range or non-finite input (it would abort the
        // process), so every sample goes through the shared clip first.
        let clean: Vec<f32> = pcm.iter().map(|&x| clip(x)).collect();
        out.reserve(mp3lame_encoder::max_required_buffer_size(clean.len()));
        self.lame
            .encode_to_vec(mp3lame_encoder::MonoPcm(&clean[..]), out)
            .map(|_| ())
            .map_err(|e| format!("mp3 encode: {e:?}"))
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        out.reserve(7200);
        self.lame
            .flush_to_vec::<mp3lame_encoder::FlushNoGap>(out)
            .map(|_| ())
            .map_err(|e| format!("mp3 flush: {e:?}"))
    }
}

/// Opus frame: 20 ms at 24 kHz.
const OPUS_FRAME: usize = 480;
const OGG_SERIAL: u32 = 0x4b6f_6b6f;

struct Opus {
    enc: opus::Encoder,
    ogg: ogg::PacketWriter<'static, Vec<u8>>,
    pending: Vec<f32>,
    /// Pre-skip in 48 kHz samples.
    pre_skip: u64,
    /// Samples (24 kHz) encoded so far.
    encoded: u64,
    header_done: bool,
    packet: Vec<u8>,
}

impl Opus {
    fn new() -> Result<Self, String> {
        let e = |e: opus::Error| format!("opus encoder: {e}");
        let mut enc =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Audio)
                .map_err(e)?;
        enc.set_bitrate(opus::Bitrate::Bits(48_000)).map_err(e)?;
        let lookahead = enc.get_lookahead().map_err(e)?.max(0) as u64;
        Ok(Self {
            enc,
            ogg: ogg::PacketWriter::new(Vec::new()),
            pending: Vec::with_capacity(OPUS_FRAME * 2),
            pre_skip: lookahead * 2,
            encoded: 0,
            header_done: false,
            packet: vec![0u8; 4000],
        })
    }

    fn headers(&mut self) -> Result<(), String> {
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1);
        head.push(1);
        head.extend_from_slice(&(self.pre_skip as u16).to_le_bytes());
        head.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes());
        head.push(0);
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        let vendor = b"kokoro-edge";
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        let w = |e: std::io::Error| format!("ogg: {e}");
        self.ogg
            .write_packet(head, OGG_SERIAL, ogg::PacketWriteEndInfo::EndPage, 0)
            .map_err(w)?;
        self.ogg
            .write_packet(tags, OGG_SERIAL, ogg::PacketWriteEndInfo::EndPage, 0)
            .map_err(w)?;
        self.header_done = true;
        Ok(())
    }

    fn write_frames(&mut self, last: bool) -> Result<(), String> {
        let frames = self.pending.len() / OPUS_FRAME;
        for i in 0..frames {
            let frame = &self.pending[i * OPUS_FRAME..(i + 1) * OPUS_FRAME];
            let n = self
                .enc
                .encode_float(frame, &mut self.packet)
                .map_err(|e| format!("opus encode: {e}"))?;
            self.encoded += OPUS_FRAME as u64;
            let end = if last && i + 1 == frames {
                ogg::PacketWriteEndInfo::EndStream
            } else if i + 1 == frames {
                ogg::PacketWriteEndInfo::EndPage
            } else {
                ogg::PacketWriteEndInfo::NormalPacket
            };
            let granule = self.pre_skip + self.encoded * 2;
            self.ogg
                .write_packet(self.packet[..n].to_vec(), OGG_SERIAL, end, granule)
                .map_err(|e| format!("ogg: {e}"))?;
        }
        self.pending.drain(..frames * OPUS_FRAME);
        Ok(())
    }

    fn take(&mut self, out: &mut Vec<u8>) {
        out.append(self.ogg.inner_mut());
    }
}

impl Encoder for Opus {
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), String> {
        if !self.header_done {
            self.headers()?;
        }
        self.pending.extend_from_slice(pcm);
        self.write_frames(false)?;
        self.take(out);
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if !self.header_done {
            self.headers()?;
        }
        // Pad the last frame, plus the encoder's lookahead so the tail is not cut.
        let pad = OPUS_FRAME - self.pending.len() % OPUS_FRAME + OPUS_FRAME;
        self.pending.extend(std::iter::repeat_n(0.0, pad));
        self.write_frames(true)?;
        self.take(out);
        Ok(())
    }
}

struct Aac {
    enc: fdk_aac::enc::Encoder,
    buf: Vec<u8>,
    samples: Vec<i16>,
}

impl Aac {
    fn new() -> Result<Self, String> {
        use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, EncoderParams, Transport};
        let enc = fdk_aac::enc::Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(64_000),
            sample_rate: SAMPLE_RATE,
            transport: Transport::Adts,
            channels: ChannelMode::Mono,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(|e| format!("aac encoder: {e:?}"))?;
        Ok(Self {
            enc,
            buf: vec![0u8; 8192],
            samples: Vec::new(),
        })
    }

    fn push(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let mut pos = 0;
        loop {
            let info = self
                .enc
                .encode(&self.samples[pos..], &mut self.buf)
                .map_err(|e| format!("aac encode: {e:?}"))?;
            out.extend_from_slice(&self.buf[..info.output_size]);
            pos += info.input_consumed;
            if info.input_consumed == 0 && info.output_size == 0 {
                break;
            }
            if pos >= self.samples.len() && info.output_size == 0 {
                break;
            }
        }
        self.samples.clear();
        Ok(())
    }
}

impl Encoder for Aac {
    fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), String> {
        self.samples.extend(pcm.iter().map(|&x| to_i16(x)));
        self.push(out)
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        // FDK keeps up to two frames of delay; push silence through to flush them.
        self.samples.extend(std::iter::repeat_n(0i16, 3 * 1024));
        self.push(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kokoro_synth::encode::{encode_with, wav_header};

    fn encoder(f: AudioFormat, total: Option<usize>) -> Result<Box<dyn Encoder>, String> {
        NativeEncoders.encoder(f, total)
    }

    fn encode_all(f: AudioFormat, pcm: &[f32]) -> Result<Vec<u8>, String> {
        encode_with(encoder(f, Some(pcm.len()))?, pcm)
    }

    fn tone(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / SAMPLE_RATE as f32).sin())
            .collect()
    }

    #[test]
    fn every_format_produces_its_magic_and_streams() {
        let pcm = tone(24_000);
        for f in AudioFormat::ALL {
            let whole = encode_all(f, &pcm).unwrap();
            let mut enc = encoder(f, None).unwrap();
            let mut streamed = Vec::new();
            let mut first_len = 0;
            for (i, c) in pcm.chunks(5000).enumerate() {
                enc.encode(c, &mut streamed).unwrap();
                if i == 0 {
                    first_len = streamed.len();
                }
            }
            enc.finish(&mut streamed).unwrap();
            assert!(first_len > 0, "{f:?}: nothing after the first chunk");
            let magic: &[u8] = match f {
                AudioFormat::Wav => b"RIFF",
                AudioFormat::Flac => b"fLaC",
                AudioFormat::Opus => b"OggS",
                AudioFormat::Mp3 => &[0xff],
                AudioFormat::Aac => &[0xff],
                AudioFormat::Pcm => &[],
            };
            assert!(whole.starts_with(magic), "{f:?}");
            assert!(streamed.starts_with(magic), "{f:?}");
            assert!(whole.len() > 1000, "{f:?}");
        }
        let wav = encode_all(AudioFormat::Wav, &pcm).unwrap();
        assert_eq!(wav.len(), 44 + 48_000);
        assert_eq!(
            u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]),
            48_000
        );
        assert_eq!(encode_all(AudioFormat::Pcm, &pcm).unwrap().len(), 48_000);
    }

    #[test]
    fn non_finite_input_never_crashes_an_encoder() {
        let mut pcm = tone(6000);
        pcm[10] = f32::NAN;
        pcm[500] = f32::INFINITY;
        pcm[900] = f32::NEG_INFINITY;
        pcm[1000] = 7.0;
        for f in AudioFormat::ALL {
            assert!(encode_all(f, &pcm).is_ok(), "{f:?}");
        }
    }

    #[test]
    fn streaming_wav_header_has_unknown_sizes() {
        let h = wav_header(None);
        assert_eq!(&h[40..44], &[0xff; 4]);
        assert_eq!(&h[4..8], &[0xff; 4]);
    }
}
