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
    if t == 0 || c == 0 {
        return;
    }
    // Rows in groups of about 64k values: enough work per task, and a group per
    // thread even for the shortest windows.
    let per = (65_536 / t).clamp(1, c);
    let groups: Vec<Mutex<(usize, &mut [f32])>> = y
        .chunks_mut(per * t)
        .enumerate()
        .map(|(i, ys)| Mutex::new((i * per, ys)))
        .collect();
    let total = groups.len();
    par(total, &|g| {
        let Ok(mut guard) = groups[g].lock() else {
            return;
        };
        let (first, ref mut ys) = *guard;
        for (j, yr) in ys.chunks_mut(t).enumerate() {
            let r = first + j;
            let ch = r % c;
            row(&x[r * t..(r + 1) * t], alpha[ch], inv[ch], yr);
        }
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

/// The domain with the Snake operator, for [`crate::load_session`].
pub fn domain() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(DOMAIN)?.add(SnakeOp)
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
        let mut generic = vec![0f32; t];
        row_generic(&x[..t], alpha[0], inv[0], &mut generic);
        assert_eq!(&generic[..], &y[..t], "the vector path gives the same bits");
    }
}
