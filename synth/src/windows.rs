//! Streaming inside a call: the encoder sees the whole call (prosody and durations
//! come from all of it), the decoder runs over windows of frames that grow, so
//! first audio needs only the encoder and a short first window.
//!
//! Decoding windows is not exact (every AdaIN block normalizes over its window's
//! time axis, and the harmonic source's phase starts at the window): each window
//! is decoded with `context` frames on both sides and neighbours are cross-faded
//! over the middle of that overlap. A whole (non-streamed) call is one window,
//! which reproduces the unsplit graph exactly. `tools/bench_split.py` and
//! `tools/bench_stream.py` measure what windows cost in fidelity.

use crate::SAMPLES_PER_FRAME;
use std::ops::Range;

/// How a streamed call is cut into decoder windows (all in frames of 25 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Speech frames in the first window (after the leading padding token).
    pub first: usize,
    /// Frames decoded beyond each side of a window, for the cross-fade and so
    /// that each window's edges see their neighbourhood.
    pub context: usize,
    /// From the third window on, each is (growth - 1) times all the audio before
    /// it (2: windows double).
    pub growth: usize,
    /// Frames of the leading padding token the first window keeps (the model
    /// gives it 9-18 frames of silence; the pipeline keeps 60 ms of it).
    pub lead: usize,
}

/// The default for streamed requests: 16 speech frames after the whole leading
/// pad, 8 frames of context; the second window as long, then each as long as all
/// before it. Measured on the 2-core machine (`tools/bench_stream.py`, 22
/// sentences): TTFA ~336 ms and no stall, against ~423 ms for two-word
/// fragments. Dropping pad frames before the first window garbled the first
/// word, so `lead` keeps all of a normal pad; 16 frames of context cost ~27 ms of
/// TTFA per 4 frames and measured no better.
pub const DEFAULT_WINDOWS: Windows = Windows {
    first: 16,
    context: 8,
    growth: 2,
    lead: 32,
};

/// One window: the frames it contributes and the frames it is decoded over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub emit: Range<usize>,
    pub decode: Range<usize>,
}

/// The windows of a call of `frames` frames whose leading pad is `lead_pad`
/// frames; `None` is one window over all of it (exact).
pub fn schedule(frames: usize, lead_pad: usize, w: Option<Windows>) -> Vec<Window> {
    let Some(w) = w.filter(|w| w.first > 0 && frames > 0) else {
        return vec![Window {
            emit: 0..frames,
            decode: 0..frames,
        }];
    };
    let start = lead_pad.saturating_sub(w.lead).min(frames);
    let mut out = Vec::new();
    let mut begin = start;
    let mut size = (lead_pad.min(frames) - start) + w.first;
    while begin < frames {
        let mut end = (begin + size).min(frames);
        // The next window is (growth - 1) times all audio so far: the second is as
        // long as the first (its decoding must finish while the first plays, and
        // the first is short), then they double (with growth 2).
        let next = ((end - start) * w.growth.saturating_sub(1)).max(w.first);
        // A remainder shorter than half the next window joins this one.
        if frames - end < next / 2 {
            end = frames;
        }
        out.push(Window {
            emit: begin..end,
            decode: begin.saturating_sub(w.context).max(start)..(end + w.context).min(frames),
        });
        begin = end;
        size = next;
    }
    out
}

/// How long (in 25 ms frames) a player waits for audio when it starts with the first
/// window's speech frames and plays in real time while a decoder at `pace`
/// (decode time per frame as a fraction of the 25 ms it plays for) works
/// through the later windows of `schedule(frames, lead_pad, w)`.
pub fn stalled_frames(frames: usize, lead_pad: usize, w: Windows, pace: f64) -> f64 {
    let wins = schedule(frames, lead_pad, Some(w));
    let mut buffered = wins[0]
        .emit
        .end
        .saturating_sub(lead_pad.max(wins[0].emit.start)) as f64;
    let mut waited = 0.0;
    for win in &wins[1..] {
        let cost = win.decode.len() as f64 * pace;
        waited += (cost - buffered).max(0.0);
        buffered = (buffered - cost).max(0.0) + win.emit.len() as f64;
    }
    waited
}

/// The slowest decoder pace (as [`stalled_frames`] counts it) at which `w` never
/// makes a player wait, over calls of up to 60 s: the backend warns at start
/// when its own decoder is slower.
pub fn safe_pace(w: Windows) -> f64 {
    let stalls = |pace: f64| {
        (40..2400)
            .step_by(13)
            .any(|frames| stalled_frames(frames, 13, w, pace) > 1e-9)
    };
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..20 {
        let mid = (lo + hi) / 2.0;
        if stalls(mid) { hi = mid } else { lo = mid }
    }
    lo
}

/// Joins decoded windows into one stream: each window's samples outside its own
/// frames are context; at a join the two windows overlap by up to `fade`
/// samples on each side of the boundary and are cross-faded linearly.
#[derive(Debug, Default)]
pub struct Joiner {
    /// The previous window's samples from the boundary - fade to boundary + fade.
    held: Vec<f32>,
}

impl Joiner {
    /// Add window `win`'s decoded samples (`audio` covers `win.decode`); returns
    /// the samples now final. At most `fade_frames` frames on each side of a
    /// boundary are cross-faded (less where a window has less context).
    pub fn push(&mut self, win: &Window, audio: &[f32], fade_frames: usize) -> Vec<f32> {
        let pos = |f: usize| ((f - win.decode.start) * SAMPLES_PER_FRAME).min(audio.len());
        let (s, e) = (pos(win.emit.start), pos(win.emit.end));
        let n = self.held.len();
        let h = n / 2;
        let mut out = Vec::with_capacity(e - s + h);
        for (k, &prev) in self.held.iter().enumerate() {
            let ours = (s + k)
                .checked_sub(h)
                .and_then(|i| audio.get(i))
                .copied()
                .unwrap_or(prev);
            let t = (k as f32 + 0.5) / n as f32;
            out.push(prev + (ours - prev) * t);
        }
        self.held.clear();
        let body = (s + h).min(e);
        let right = (fade_frames * SAMPLES_PER_FRAME)
            .min(audio.len() - e)
            .min(e - body);
        out.extend_from_slice(&audio[body..e - right]);
        self.held.extend_from_slice(&audio[e - right..e + right]);
        out
    }

    /// Whatever is still held (only if the last window did not reach the end).
    pub fn finish(&mut self) -> Vec<f32> {
        let half = self.held.len() / 2;
        let mut v = std::mem::take(&mut self.held);
        v.truncate(half);
        v
    }
}

/// Streaming form of [`crate::trim_silence`]: keeps at most `keep_lead` samples
/// of silence before the first loud sample and `keep_tail` after the last, while
/// passing speech through as it comes. Silence is held back until it is known
/// whether speech follows; a call that is silent throughout comes out whole.
#[derive(Debug)]
pub struct Trimmer {
    keep_lead: usize,
    keep_tail: usize,
    started: bool,
    /// Before speech: everything so far; after: the current quiet run.
    held: Vec<f32>,
    /// Samples cut before the speech (known once started).
    dropped: usize,
}

impl Trimmer {
    pub fn new(keep_lead: usize, keep_tail: usize) -> Self {
        Self {
            keep_lead,
            keep_tail,
            started: false,
            held: Vec::new(),
            dropped: 0,
        }
    }

    /// Whether speech has begun (the lead is cut).
    pub fn started(&self) -> bool {
        self.started
    }

    /// Samples cut from the front.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    pub fn push(&mut self, audio: &[f32]) -> Vec<f32> {
        let loud = |s: &f32| s.abs() > crate::SILENCE;
        let Some(last) = audio.iter().rposition(loud) else {
            self.held.extend_from_slice(audio);
            return Vec::new();
        };
        let mut out = Vec::with_capacity(self.held.len() + audio.len());
        if self.started {
            out.append(&mut self.held);
            out.extend_from_slice(&audio[..=last]);
        } else {
            let first = audio.iter().position(loud).unwrap_or(last);
            self.held.extend_from_slice(&audio[..first]);
            let skip = self.held.len().saturating_sub(self.keep_lead);
            self.dropped = skip;
            out.extend_from_slice(&self.held[skip..]);
            self.held.clear();
            out.extend_from_slice(&audio[first..=last]);
            self.started = true;
        }
        self.held.extend_from_slice(&audio[last + 1..]);
        out
    }

    pub fn finish(&mut self) -> Vec<f32> {
        let mut v = std::mem::take(&mut self.held);
        if self.started {
            v.truncate(self.keep_tail);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_window_without_streaming_and_growing_windows_with_it() {
        assert_eq!(
            schedule(130, 13, None),
            vec![Window {
                emit: 0..130,
                decode: 0..130
            }]
        );
        let w4 = Windows {
            first: 16,
            context: 8,
            growth: 2,
            lead: 4,
        };
        let w = schedule(130, 13, Some(w4));
        // The first window starts 4 frames before speech and holds 16 speech frames.
        assert_eq!(w[0].emit, 9..29);
        assert_eq!(w[0].decode, 9..37);
        // The second as long as the first, then doubling what is out so far.
        assert_eq!(w[1].emit, 29..49);
        assert_eq!(w[1].decode, 21..57);
        assert_eq!(w[2].emit, 49..89);
        assert_eq!(w[3].emit, 89..130);
        assert_eq!(w.len(), 4);
        // A remainder under half the next window's length joins the window before.
        let joined = schedule(105, 13, Some(w4));
        assert_eq!(joined.last().unwrap().emit, 49..105);
        for pair in w.windows(2) {
            assert_eq!(pair[0].emit.end, pair[1].emit.start);
        }
        // A short call is one window after the pad.
        let short = schedule(30, 13, Some(w4));
        assert_eq!(short.len(), 1);
        assert_eq!(short[0].emit, 9..30);
        assert_eq!(schedule(0, 0, Some(DEFAULT_WINDOWS)).len(), 1);
        // The default keeps the whole pad: the first window starts at frame 0.
        let d = schedule(130, 13, Some(DEFAULT_WINDOWS));
        assert_eq!((d[0].emit.clone(), d[0].decode.clone()), (0..29, 0..37));
    }

    #[test]
    fn the_default_windows_keep_a_player_fed_up_to_about_27_percent() {
        // The second window is as long as the first with its lead pad (29 frames
        // for a 13-frame pad) while the player holds only the 16 speech frames, and
        // a remainder under half the next window joins the one before: so the
        // default schedule is safe only to ~27% over every length, not the 40% a
        // 16, 16, 32, 64 reading suggests.
        let p = safe_pace(DEFAULT_WINDOWS);
        assert!((0.25..0.30).contains(&p), "{p}");
        assert_eq!(stalled_frames(130, 13, DEFAULT_WINDOWS, 0.25), 0.0);
        // The AMD EPYC on a slow day (42%) runs dry on nearly every length.
        assert!(stalled_frames(130, 13, DEFAULT_WINDOWS, 0.42) > 0.0);
        assert!(stalled_frames(1379, 13, DEFAULT_WINDOWS, 0.42) > 100.0);
        // More context costs pace headroom.
        assert!(
            safe_pace(Windows {
                context: 16,
                ..DEFAULT_WINDOWS
            }) < p
        );
    }

    /// Windows over a signal that does not depend on the window join back into it.
    #[test]
    fn joined_windows_cover_every_frame_once() {
        let frames = 200;
        let signal: Vec<f32> = (0..frames * SAMPLES_PER_FRAME)
            .map(|i| (i as f32 * 0.01).sin())
            .collect();
        for lead_pad in [0, 13, 40] {
            let wins = schedule(frames, lead_pad, Some(DEFAULT_WINDOWS));
            let mut j = Joiner::default();
            let mut out = Vec::new();
            for w in &wins {
                let a =
                    &signal[w.decode.start * SAMPLES_PER_FRAME..w.decode.end * SAMPLES_PER_FRAME];
                out.extend(j.push(w, a, 2));
            }
            out.extend(j.finish());
            let start = wins[0].emit.start * SAMPLES_PER_FRAME;
            assert_eq!(out.len(), signal.len() - start, "lead pad {lead_pad}");
            let worst = out
                .iter()
                .zip(&signal[start..])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "lead pad {lead_pad}: {worst}");
        }
    }

    #[test]
    fn the_trimmer_streams_what_trim_silence_cuts() {
        let mut a = vec![0.0f32; 5000];
        a.extend((0..3000).map(|i| 0.5 * ((i as f32) * 0.3).sin() + 0.2));
        a.extend(vec![0.001f32; 4000]);
        a.extend(vec![0.3f32; 100]);
        a.extend(vec![0.0f32; 9000]);
        let mut want = a.clone();
        crate::trim_silence(&mut want, 1440, 3600);
        for piece in [1, 7, 600, 5000, 30_000] {
            let mut t = Trimmer::new(1440, 3600);
            let mut got = Vec::new();
            for c in a.chunks(piece) {
                got.extend(t.push(c));
            }
            got.extend(t.finish());
            assert_eq!(got, want, "pieces of {piece}");
        }
        let mut quiet = Trimmer::new(10, 10);
        assert!(quiet.push(&[0.0; 100]).is_empty());
        assert_eq!(quiet.finish().len(), 100);
    }
}
