//! The Snake activation as one custom operator: `y = x + inv_alpha * sin(alpha * x)^2`
//! per channel, `x` of shape `[N, C, T]`, `alpha` and `inv_alpha` of `[1, C, 1]`.
//!
//! Kokoro's vocoder applies Snake 48 times per decode, on up to 128 x 120 values per
//! 25 ms frame. Exported, each one is five passes over the tensor (Mul, Sin, Mul,
//! Mul, Add), and ONNX Runtime's CPU `Sin` runs on one thread: measured 15% of a
//! decode's time for `Sin` alone on 2 cores. `tools/optimize_decoder.py --only snake`
//! rewrites each such chain into one `ai.kokoro_edge:Snake` node, which this kernel
//! computes in one pass, split over the session's intra-op threads by channel.
//!
//! `sin^2` needs no sign: with `z = k * pi + r`, `|r| <= pi / 2`, `sin(z)^2 =
//! sin(r)^2`. `k` is rounded with the 1.5 * 2^23 trick (no rounding instruction on
//! baseline x86-64), `r` is reduced with pi in three parts (Cody-Waite), and `sin(r)`
//! is its Taylor polynomial to `r^13` (truncation under 1e-9 on the interval). No
//! fused multiply-add anywhere, so every instruction set gives the same bits.
//!
//! `ai.kokoro_edge:AdaSnake` also takes in the AdaIN before 42 of the 48 Snakes
//! (instance norm over time, then the style's scale and shift): one row's moments in
//! f64 and one pass that writes the activation, where the exported graph makes four
//! more passes (InstanceNormalization, Mul, Add, then Snake).

use ort::operator::io::{OperatorInput, OperatorOutput};
use ort::operator::kernel::{Kernel, KernelAttributes, KernelContext};
use ort::operator::{Operator, OperatorDomain};
use ort::tensor::TensorElementType;
use std::sync::Mutex;

/// The custom-op domain of the rewritten decoder's Snake nodes.
pub const DOMAIN: &str = "ai.kokoro_edge";
/// The operator's name in [`DOMAIN`].
pub const NAME: &str = "Snake";

const INV_PI: f32 = std::f32::consts::FRAC_1_PI;
const PI_1: f32 = 3.140_625;
const PI_2: f32 = 9.675_026e-4;
const PI_3: f32 = 1.509_958e-7;
/// Adding and subtracting 1.5 * 2^23 rounds an f32 of magnitude under 2^22 to an integer.
const ROUND: f32 = 12_582_912.0;

/// `sin(z)^2`, within 3e-7 of the exact value for |z| up to a few thousand.
#[inline(always)]
pub fn sin_squared(z: f32) -> f32 {
    let k = (z * INV_PI + ROUND) - ROUND;
    let r = ((z - k * PI_1) - k * PI_2) - k * PI_3;
    let r2 = r * r;
    let p = 1.0 / 6_227_020_800.0;
    let p = p * r2 - 1.0 / 39_916_800.0;
    let p = p * r2 + 1.0 / 362_880.0;
    let p = p * r2 - 1.0 / 5_040.0;
    let p = p * r2 + 1.0 / 120.0;
    let p = p * r2 - 1.0 / 6.0;
    let s = r + r * r2 * p;
    // Beyond 2^22 * pi the reduction no longer holds; stay inside sin^2's range.
    (s * s).min(1.0)
}

#[inline(always)]
fn row_generic(x: &[f32], alpha: f32, inv: f32, y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v + inv * sin_squared(alpha * v);
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx2")]
fn row_avx2(x: &[f32], alpha: f32, inv: f32, y: &mut [f32]) {
    row_generic(x, alpha, inv, y)
}

/// One channel: `y = x + inv * sin(alpha * x)^2`, 8 lanes wide where AVX2 exists.
pub fn row(x: &[f32], alpha: f32, inv: f32, y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked at run time just above).
        #[allow(unsafe_code)]
        unsafe {
            row_avx2(x, alpha, inv, y)
        };
        return;
    }
    row_generic(x, alpha, inv, y)
}

/// Mean and variance (of the deviations, as the exported norm chain computes it) of
/// one row, accumulated in f64 over 8 independent lanes (so it vectorizes).
#[inline(always)]
fn moments_generic(h: &[f32]) -> (f64, f64) {
    let lanes = |f: &dyn Fn(f32) -> f64| {
        let mut acc = [0f64; 8];
        let mut it = h.chunks_exact(8);
        for c in &mut it {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += f(v);
            }
        }
        let tail: f64 = it.remainder().iter().map(|&v| f(v)).sum();
        acc.iter().sum::<f64>() + tail
    };
    let n = h.len().max(1) as f64;
    let mean = lanes(&|v| f64::from(v)) / n;
    let var = lanes(&|v| {
        let d = f64::from(v) - mean;
        d * d
    }) / n;
    (mean, var)
}

/// One channel of AdaIN then Snake: `x = (h - mean) * inv_std * scale + shift`,
/// `y = x + inv * sin(alpha * x)^2`.
#[inline(always)]
fn ada_row_generic(h: &[f32], p: AdaRow, y: &mut [f32]) {
    let (mean, var) = moments_generic(h);
    let mean = mean as f32;
    let inv_std = (1.0 / (var + f64::from(p.eps)).sqrt()) as f32;
    for (o, &v) in y.iter_mut().zip(h) {
        let x = (v - mean) * inv_std * p.scale + p.shift;
        *o = x + p.inv * sin_squared(p.alpha * x);
    }
}

/// One row's AdaIN and Snake parameters.
#[derive(Debug, Clone, Copy)]
pub struct AdaRow {
    pub eps: f32,
    pub scale: f32,
    pub shift: f32,
    pub alpha: f32,
    pub inv: f32,
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx2")]
fn ada_row_avx2(h: &[f32], p: AdaRow, y: &mut [f32]) {
    ada_row_generic(h, p, y)
}

/// One channel of the fused AdaIN + Snake, 8 lanes wide where AVX2 exists.
pub fn ada_row(h: &[f32], p: AdaRow, y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked at run time just above).
        #[allow(unsafe_code)]
        unsafe {
            ada_row_avx2(h, p, y)
        };
        return;
    }
    ada_row_generic(h, p, y)
}

/// Rows of `t` values of `y`, in groups of about 64k values, handed to `par`
/// (`par(total, f)` calls `f(i)` for every `i < total`, on any thread); `each(r, y_r)`
/// fills row `r`.
fn by_rows(
    y: &mut [f32],
    t: usize,
    par: impl FnOnce(usize, &(dyn Fn(usize) + Sync + Send)),
    each: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let rows = y.len() / t.max(1);
    if t == 0 || rows == 0 {
        return;
    }
    // Enough work per task, and a group per thread even for the shortest windows.
    let per = (65_536 / t).clamp(1, rows);
    let groups: Vec<Mutex<(usize, &mut [f32])>> = y
        .chunks_mut(per * t)
        .enumerate()
        .map(|(i, ys)| Mutex::new((i * per, ys)))
        .collect();
    par(groups.len(), &|g| {
        let Ok(mut guard) = groups[g].lock() else {
            return;
        };
        let (first, ref mut ys) = *guard;
        for (j, yr) in ys.chunks_mut(t).enumerate() {
            each(first + j, yr);
        }
    });
}

/// AdaIN then Snake over `h` of `[n, c, t]` into `y`: row `r` (batch item `r / c`,
/// channel `r % c`) normalized over its `t` values, then `* scale + shift` (`scale`
/// and `shift` of `c` or `n * c` values), then Snake with `alpha[r % c]`.
#[allow(clippy::too_many_arguments)]
pub fn ada_snake(
    h: &[f32],
    scale: &[f32],
    shift: &[f32],
    alpha: &[f32],
    inv: &[f32],
    eps: f32,
    t: usize,
    y: &mut [f32],
    par: impl FnOnce(usize, &(dyn Fn(usize) + Sync + Send)),
) {
    let c = alpha.len().max(1);
    by_rows(y, t, par, &|r, yr| {
        let at = |v: &[f32]| v[if v.len() == c { r % c } else { r % v.len() }];
        let p = AdaRow {
            eps,
            scale: at(scale),
            shift: at(shift),
            alpha: alpha[r % c],
            inv: inv[r % c],
        };
        ada_row(&h[r * t..(r + 1) * t], p, yr);
    });
}

/// Snake over `x` of `[n, c, t]` (`t` contiguous) into `y`, channel `ch` of every
/// batch item using `alpha[ch]` and `inv[ch]`; the rows go to `par` in `batches`
/// groups (`par(total, f)` calls `f(i)` for every `i < total`, on any thread).
pub fn snake(
    x: &[f32],
    alpha: &[f32],
    inv: &[f32],
    t: usize,
    y: &mut [f32],
    par: impl FnOnce(usize, &(dyn Fn(usize) + Sync + Send)),
) {
    let c = alpha.len();
    if c == 0 {
        return;
    }
    by_rows(y, t, par, &|r, yr| {
        let ch = r % c;
        row(&x[r * t..(r + 1) * t], alpha[ch], inv[ch], yr);
    });
}

struct SnakeOp;

impl Operator for SnakeOp {
    fn name(&self) -> &str {
        NAME
    }

    fn inputs(&self) -> Vec<OperatorInput> {
        (0..3)
            .map(|_| OperatorInput::required(TensorElementType::Float32))
            .collect()
    }

    fn outputs(&self) -> Vec<OperatorOutput> {
        vec![OperatorOutput::required(TensorElementType::Float32)]
    }

    fn create_kernel(&self, _: &KernelAttributes) -> ort::Result<Box<dyn Kernel>> {
        Ok(Box::new(|ctx: &KernelContext| {
            let missing = || ort::Error::new("Snake: missing input or output");
            let x = ctx.input(0)?.ok_or_else(missing)?;
            let alpha = ctx.input(1)?.ok_or_else(missing)?;
            let inv = ctx.input(2)?.ok_or_else(missing)?;
            let (shape, xs) = x.try_extract_tensor::<f32>()?;
            let (_, alpha) = alpha.try_extract_tensor::<f32>()?;
            let (_, inv) = inv.try_extract_tensor::<f32>()?;
            let dims: Vec<i64> = shape.iter().copied().collect();
            let [_, c, t] = dims[..] else {
                return Err(ort::Error::new("Snake: the input must be [N, C, T]"));
            };
            let (c, t) = (c.max(0) as usize, t.max(0) as usize);
            if alpha.len() != c || inv.len() != c {
                return Err(ort::Error::new(
                    "Snake: alpha and inv_alpha must have C values",
                ));
            }
            let mut y = ctx.output(0, dims.clone())?.ok_or_else(missing)?;
            let (_, ys) = y.try_extract_tensor_mut::<f32>()?;
            let mut failed = None;
            snake(xs, alpha, inv, t, ys, |total, f| {
                if let Err(e) = ctx.par_for(total, total, f) {
                    failed = Some(e);
                }
            });
            failed.map_or(Ok(()), Err)
        }))
    }
}

/// [`ADA_NAME`]: `InstanceNormalization(h)` (scale 1, bias 0, attribute `epsilon`),
/// `* scale + shift` (the style's AdaIN, `[1, C, 1]` tensors computed per call), then
/// Snake; inputs `h, scale, shift, alpha, inv_alpha`.
struct AdaSnakeOp;

/// The fused AdaIN + Snake operator's name in [`DOMAIN`].
pub const ADA_NAME: &str = "AdaSnake";

impl Operator for AdaSnakeOp {
    fn name(&self) -> &str {
        ADA_NAME
    }

    fn inputs(&self) -> Vec<OperatorInput> {
        (0..5)
            .map(|_| OperatorInput::required(TensorElementType::Float32))
            .collect()
    }

    fn outputs(&self) -> Vec<OperatorOutput> {
        vec![OperatorOutput::required(TensorElementType::Float32)]
    }

    fn create_kernel(&self, attrs: &KernelAttributes) -> ort::Result<Box<dyn Kernel>> {
        let eps: f32 = attrs.get("epsilon").unwrap_or(1e-5);
        Ok(Box::new(move |ctx: &KernelContext| {
            let missing = || ort::Error::new("AdaSnake: missing input or output");
            let inputs = (0..5)
                .map(|i| ctx.input(i)?.ok_or_else(missing))
                .collect::<ort::Result<Vec<_>>>()?;
            let (shape, h) = inputs[0].try_extract_tensor::<f32>()?;
            let dims: Vec<i64> = shape.iter().copied().collect();
            let [n, c, t] = dims[..] else {
                return Err(ort::Error::new("AdaSnake: the input must be [N, C, T]"));
            };
            let (n, c, t) = (n.max(0) as usize, c.max(0) as usize, t.max(0) as usize);
            let mut p = Vec::with_capacity(4);
            for v in &inputs[1..] {
                p.push(v.try_extract_tensor::<f32>()?.1);
            }
            let ok = |v: &[f32], batch: bool| v.len() == c || (batch && v.len() == n * c);
            if !(ok(p[0], true) && ok(p[1], true) && ok(p[2], false) && ok(p[3], false)) {
                return Err(ort::Error::new(
                    "AdaSnake: scale and shift need C or N x C values, alpha and inv_alpha C",
                ));
            }
            let mut y = ctx.output(0, dims.clone())?.ok_or_else(missing)?;
            let (_, ys) = y.try_extract_tensor_mut::<f32>()?;
            let mut failed = None;
            ada_snake(h, p[0], p[1], p[2], p[3], eps, t, ys, |total, f| {
                if let Err(e) = ctx.par_for(total, total, f) {
                    failed = Some(e);
                }
            });
            failed.map_or(Ok(()), Err)
        }))
    }
}

/// The domain with the Snake operators, for [`crate::load_session`].
pub fn domain() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(DOMAIN)?.add(SnakeOp)?.add(AdaSnakeOp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sin_squared_is_within_3e_7_of_f64() {
        let mut worst = 0f64;
        for i in -400_000..400_000 {
            let z = i as f32 * 0.012_3;
            let e = (f64::from(sin_squared(z)) - f64::from(z).sin().powi(2)).abs();
            worst = worst.max(e);
        }
        assert!(worst < 3e-7, "{worst:e}");
        assert_eq!(sin_squared(0.0), 0.0);
        assert!((0.0..=1.0).contains(&sin_squared(1e12)));
    }

    #[test]
    fn snake_matches_the_formula_per_channel_in_any_grouping() {
        let (n, c, t) = (2, 3, 1000);
        let x: Vec<f32> = (0..n * c * t)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
            .collect();
        let alpha = [0.5f32, 1.0, 7.5];
        let inv: Vec<f32> = alpha.iter().map(|a| 1.0 / a).collect();
        let mut y = vec![f32::NAN; x.len()];
        // Run the groups in reverse, as threads might.
        snake(&x, &alpha, &inv, t, &mut y, |total, f| {
            (0..total).rev().for_each(f)
        });
        for (i, (&xv, &yv)) in x.iter().zip(&y).enumerate() {
            let ch = (i / t) % c;
            let want = f64::from(xv)
                + f64::from(inv[ch]) * (f64::from(alpha[ch]) * f64::from(xv)).sin().powi(2);
            assert!((f64::from(yv) - want).abs() < 1e-5, "{i}: {yv} vs {want}");
        }
        // AdaIN + Snake against the formula in f64.
        let scale = [1.5f32, 0.25, -2.0];
        let shift = [0.1f32, -0.3, 2.0];
        let mut z = vec![f32::NAN; x.len()];
        ada_snake(
            &x,
            &scale,
            &shift,
            &alpha,
            &inv,
            1e-5,
            t,
            &mut z,
            |total, f| (0..total).for_each(f),
        );
        for r in 0..n * c {
            let h = &x[r * t..(r + 1) * t];
            let mean = h.iter().map(|&v| f64::from(v)).sum::<f64>() / t as f64;
            let var = h
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / t as f64;
            let ch = r % c;
            for (k, &v) in h.iter().enumerate() {
                let xn = (f64::from(v) - mean) / (var + 1e-5).sqrt() * f64::from(scale[ch])
                    + f64::from(shift[ch]);
                let want = xn + f64::from(inv[ch]) * (f64::from(alpha[ch]) * xn).sin().powi(2);
                let got = f64::from(z[r * t + k]);
                assert!((got - want).abs() < 1e-4, "row {r} {k}: {got} vs {want}");
            }
        }
        let mut generic = vec![0f32; t];
        row_generic(&x[..t], alpha[0], inv[0], &mut generic);
        assert_eq!(&generic[..], &y[..t], "the vector path gives the same bits");
    }
}
