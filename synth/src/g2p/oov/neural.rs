//! The learned grapheme-to-phoneme model of `g2p-en` 2.1.0 (Apache-2.0,
//! `checkpoint20.npz`): a GRU encoder-decoder trained on CMUdict, letters in,
//! ARPAbet out. Inference is plain f32 matrix-vector products with greedy
//! decoding and a length bound; about 10 M multiply-adds per word.

/// Letters the encoder knows: `<pad>`, `<unk>`, `</s>`, then a-z.
const UNK_LETTER: usize = 1;
const END_LETTER: usize = 2;
/// Decoder outputs: `<pad>`, `<unk>`, `<s>`, `</s>`, then ARPAbet with stress.
const START: usize = 2;
const END: usize = 3;
pub const PHONES: [&str; 70] = [
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2", "AW0",
    "AW1", "AW2", "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2", "ER0", "ER1",
    "ER2", "EY0", "EY1", "EY2", "F", "G", "HH", "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "JH",
    "K", "L", "M", "N", "NG", "OW0", "OW1", "OW2", "OY0", "OY1", "OY2", "P", "R", "S", "SH", "T",
    "TH", "UH0", "UH1", "UH2", "UW", "UW0", "UW1", "UW2", "V", "W", "Y", "Z", "ZH",
];
const OUTPUTS: usize = PHONES.len() + 4;
const LETTERS: usize = 29;
/// The longest word the model is asked about; longer ones are spelled or split.
pub const MAX_LETTERS: usize = 32;

/// One GRU layer (PyTorch gate order r, z, n).
struct Gru {
    hidden: usize,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
}

fn matvec(w: &[f32], x: &[f32], b: &[f32], out: &mut [f32]) {
    let cols = x.len();
    for ((row, o), bias) in w.chunks_exact(cols).zip(out.iter_mut()).zip(b) {
        let mut acc = [0f32; 8];
        for (wc, xc) in row.chunks_exact(8).zip(x.chunks_exact(8)) {
            for k in 0..8 {
                acc[k] += wc[k] * xc[k];
            }
        }
        let tail: f32 = row[cols / 8 * 8..]
            .iter()
            .zip(&x[cols / 8 * 8..])
            .map(|(a, b)| a * b)
            .sum();
        *o = acc.iter().sum::<f32>() + tail + bias;
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Gru {
    /// One step: `h` becomes the new hidden state.
    fn step(&self, x: &[f32], h: &mut [f32], scratch: &mut (Vec<f32>, Vec<f32>)) {
        let n = self.hidden;
        let (gi, gh) = scratch;
        gi.resize(3 * n, 0.0);
        gh.resize(3 * n, 0.0);
        matvec(&self.w_ih, x, &self.b_ih, gi);
        matvec(&self.w_hh, h, &self.b_hh, gh);
        for k in 0..n {
            let r = sigmoid(gi[k] + gh[k]);
            let z = sigmoid(gi[n + k] + gh[n + k]);
            let c = (gi[2 * n + k] + r * gh[2 * n + k]).tanh();
            h[k] = (1.0 - z) * c + z * h[k];
        }
    }
}

/// The loaded model.
pub struct Neural {
    emb: usize,
    enc_emb: Vec<f32>,
    enc: Gru,
    dec_emb: Vec<f32>,
    dec: Gru,
    fc_w: Vec<f32>,
    fc_b: Vec<f32>,
}

impl Neural {
    /// Load from the bytes of `checkpoint20.npz` (a stored, uncompressed zip of `.npy`).
    pub fn from_npz(bytes: &[u8]) -> Result<Self, String> {
        let arrays = npz_arrays(bytes)?;
        let get = |name: &str| -> Result<(Vec<usize>, Vec<f32>), String> {
            arrays
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, s, d)| (s.clone(), d.clone()))
                .ok_or_else(|| format!("g2p model: no array {name}"))
        };
        let (s, enc_emb) = get("enc_emb")?;
        let [letters, emb] = s[..] else {
            return Err("g2p model: enc_emb is not 2-D".into());
        };
        let gru = |prefix: &str| -> Result<Gru, String> {
            let (s_ih, w_ih) = get(&format!("{prefix}_w_ih"))?;
            let (s_hh, w_hh) = get(&format!("{prefix}_w_hh"))?;
            let (_, b_ih) = get(&format!("{prefix}_b_ih"))?;
            let (_, b_hh) = get(&format!("{prefix}_b_hh"))?;
            let hidden = s_hh.get(1).copied().unwrap_or(0);
            if s_ih != [3 * hidden, emb]
                || s_hh != [3 * hidden, hidden]
                || b_ih.len() != 3 * hidden
                || b_hh.len() != 3 * hidden
            {
                return Err(format!("g2p model: {prefix} GRU has unexpected shapes"));
            }
            Ok(Gru {
                hidden,
                w_ih,
                w_hh,
                b_ih,
                b_hh,
            })
        };
        let enc = gru("enc")?;
        let dec = gru("dec")?;
        let (s_dec, dec_emb) = get("dec_emb")?;
        let (s_fc, fc_w) = get("fc_w")?;
        let (_, fc_b) = get("fc_b")?;
        if letters != LETTERS
            || s_dec != [OUTPUTS, emb]
            || s_fc != [OUTPUTS, dec.hidden]
            || fc_b.len() != OUTPUTS
            || enc.hidden != dec.hidden
        {
            return Err("g2p model: embedding or output shapes do not match g2p-en".into());
        }
        Ok(Neural {
            emb,
            enc_emb,
            enc,
            dec_emb,
            dec,
            fc_w,
            fc_b,
        })
    }

    /// ARPAbet phones for a word of ASCII letters (any case); `None` for an empty
    /// or over-long word. Decoding stops at `</s>` or after `letters + 8` phones.
    pub fn predict(&self, word: &str) -> Option<Vec<&'static str>> {
        if word.is_empty() || word.len() > MAX_LETTERS {
            return None;
        }
        let hidden = self.enc.hidden;
        let mut h = vec![0f32; hidden];
        let mut scratch = (Vec::new(), Vec::new());
        let letter = |c: u8| match c.to_ascii_lowercase() {
            c @ b'a'..=b'z' => (c - b'a') as usize + 3,
            _ => UNK_LETTER,
        };
        let ids = word.bytes().map(letter).chain([END_LETTER]);
        for id in ids {
            let x = &self.enc_emb[id * self.emb..(id + 1) * self.emb];
            self.enc.step(x, &mut h, &mut scratch);
        }
        let mut out = Vec::new();
        let mut logits = vec![0f32; OUTPUTS];
        let mut prev = START;
        for _ in 0..word.len() + 8 {
            let x = &self.dec_emb[prev * self.emb..(prev + 1) * self.emb];
            self.dec.step(x, &mut h, &mut scratch);
            matvec(&self.fc_w, &h, &self.fc_b, &mut logits);
            let best = logits
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (i, &v)| {
                        if v > acc.1 { (i, v) } else { acc }
                    },
                )
                .0;
            if best == END {
                break;
            }
            if let Some(p) = best.checked_sub(4).and_then(|i| PHONES.get(i)) {
                out.push(*p);
            }
            prev = best;
        }
        (!out.is_empty()).then_some(out)
    }
}

/// One array of an `.npz`: name, shape, values.
type Array = (String, Vec<usize>, Vec<f32>);

/// The `<f4` arrays of a stored (uncompressed) `.npz`.
fn npz_arrays(bytes: &[u8]) -> Result<Vec<Array>, String> {
    let u16_at = |i: usize| {
        bytes
            .get(i..i + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let bad = |why: &str| format!("g2p model: not a stored npz ({why})");
    let mut out = Vec::new();
    let mut pos = 0;
    while u32_at(pos) == Some(0x0403_4b50) {
        let method = u16_at(pos + 8).ok_or_else(|| bad("header"))?;
        let size = u32_at(pos + 18).ok_or_else(|| bad("header"))?;
        let name_len = u16_at(pos + 26).ok_or_else(|| bad("header"))?;
        let extra_len = u16_at(pos + 28).ok_or_else(|| bad("header"))?;
        if method != 0 || size == 0xffff_ffff {
            return Err(bad("compressed or zip64 member"));
        }
        let name_at = pos + 30;
        let data_at = name_at + name_len + extra_len;
        let name = bytes
            .get(name_at..name_at + name_len)
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or_else(|| bad("name"))?;
        let data = bytes
            .get(data_at..data_at + size)
            .ok_or_else(|| bad("truncated"))?;
        let (shape, values) = npy_f32(data).map_err(|e| format!("g2p model: {name}: {e}"))?;
        out.push((name.trim_end_matches(".npy").to_string(), shape, values));
        pos = data_at + size;
    }
    if out.is_empty() {
        return Err(bad("no members"));
    }
    Ok(out)
}

/// A little-endian float32, C-order `.npy`: its shape and values.
fn npy_f32(b: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not .npy".into());
    }
    let (len, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        _ if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        _ => return Err("header".into()),
    };
    let header = b
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("header")?;
    if !header.contains("'<f4'") || header.contains("True") {
        return Err(format!(
            "not little-endian float32 in C order: {}",
            header.trim()
        ));
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape")?;
    let shape: Vec<usize> = shape_text
        .trim_start_matches([' ', '('])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| "bad shape"))
        .collect::<Result<_, _>>()?;
    let data = &b[start + len..];
    let count: usize = shape.iter().product();
    if data.len() != count * 4 {
        return Err("size does not match shape".into());
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(shape: &str, values: &[f32]) -> Vec<u8> {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((header.len() as u16).to_le_bytes());
        b.extend(header.as_bytes());
        for v in values {
            b.extend(v.to_le_bytes());
        }
        b
    }

    fn stored_zip(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut z = Vec::new();
        for (name, data) in members {
            z.extend(0x0403_4b50u32.to_le_bytes());
            z.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            z.extend((data.len() as u32).to_le_bytes());
            z.extend((data.len() as u32).to_le_bytes());
            z.extend((name.len() as u16).to_le_bytes());
            z.extend(0u16.to_le_bytes());
            z.extend(name.as_bytes());
            z.extend(data);
        }
        z.extend(0x0201_4b50u32.to_le_bytes());
        z
    }

    #[test]
    fn reads_stored_npz_and_checks_shapes() {
        let z = stored_zip(&[
            ("a.npy", npy("(2, 3)", &[1., 2., 3., 4., 5., 6.])),
            ("b.npy", npy("(4,)", &[0.5; 4])),
        ]);
        let arrays = npz_arrays(&z).unwrap();
        assert_eq!(arrays[0].0, "a");
        assert_eq!(arrays[0].1, vec![2, 3]);
        assert_eq!(arrays[0].2[5], 6.0);
        assert_eq!(arrays[1].1, vec![4]);
        // A model whose arrays are missing or misshapen is refused, not guessed at.
        assert!(Neural::from_npz(&z).is_err());
        assert!(npz_arrays(b"PK\x05\x06").is_err());
        let mut bad = npy("(2, 3)", &[1.0; 6]);
        bad.pop();
        assert!(npy_f32(&bad).is_err());
    }

    #[test]
    fn matvec_is_a_matrix_vector_product() {
        let w: Vec<f32> = (0..30).map(|i| i as f32).collect();
        let x: Vec<f32> = (0..10).map(|i| (i % 3) as f32).collect();
        let mut out = [0f32; 3];
        matvec(&w, &x, &[1.0, 0.0, -1.0], &mut out);
        for (r, o) in out.iter().enumerate() {
            let want: f32 =
                (0..10).map(|c| w[r * 10 + c] * x[c]).sum::<f32>() + [1.0, 0.0, -1.0][r];
            assert_eq!(*o, want);
        }
    }
}
