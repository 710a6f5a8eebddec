//! Element-wise kernels on `f32` slices, written so the compiler vectorises them (no branches,
//! lane-wise accumulators) and compiled three times — AVX-512, AVX2 + FMA, baseline — with the
//! widest the CPU has picked at run time.

use std::mem::MaybeUninit;

use crate::Act;

/// The widest vector level of this CPU: 4 (AVX-512), 3 (AVX2 + FMA) or 0.
#[allow(unreachable_code)]
pub(crate) fn level() -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        static LEVEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
        return *LEVEL.get_or_init(|| {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                4
            } else if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                3
            } else {
                0
            }
        });
    }
    0
}

/// Defines `fn $name(args) -> ret` (with its visibility) from an `#[inline(always)]` body,
/// dispatched on [`level`].
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                match $crate::flex::math::level() {
                    // SAFETY: the CPU has the features (checked by `level`).
                    4 => return unsafe { v4($($arg),*) },
                    3 => return unsafe { v3($($arg),*) },
                    _ => {}
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two so that n·ln2 is exact in the high part (Cody–Waite).
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// eˣ to about 1 ulp for x in [−87.3, 88.7] (clamped outside): e^x = 2ⁿ·e^r with
/// |r| ≤ ln2 / 2 and a degree-7 Taylor polynomial for e^r (truncation error < 1e-8).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.336_54, 88.722_83);
    // Round to nearest by the 1.5·2²³ trick (vectorises, unlike `round`); the integer is then
    // in the low bits of `t` (read as bits: a float-to-int `as` would not vectorise).
    let t = x * LOG2E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 5040.0 + r * (1.0 / 40320.0);
    let p = 1.0 / 720.0 + r * p;
    let p = 1.0 / 120.0 + r * p;
    let p = 1.0 / 24.0 + r * p;
    let p = 1.0 / 6.0 + r * p;
    let p = 0.5 + r * p;
    let p = 1.0 + r * p;
    let p = 1.0 + r * p;
    // n ∈ [−126, 128]: 2ⁿ by building the exponent bits; n = 128 (x near 88.7) in two halves.
    let half = ni >> 1;
    let a = f32::from_bits(((half + 127) as u32) << 23);
    let b = f32::from_bits(((ni - half + 127) as u32) << 23);
    p * a * b
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

const QG: f32 = 1.702;

/// `(z·σ(1.702 z), its derivative)` from one sigmoid.
#[inline(always)]
fn quick_gelu_and_grad(z: f32) -> (f32, f32) {
    let s = sigmoid(QG * z);
    (z * s, s + QG * z * s * (1.0 - s))
}

#[inline(always)]
fn quick_gelu_grad(z: f32) -> f32 {
    quick_gelu_and_grad(z).1
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
// 1/√(2π)
const INV_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn gelu(z: f32) -> f32 {
    0.5 * z * (1.0 + libm::erff(z * FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_grad(z: f32) -> f32 {
    0.5 * (1.0 + libm::erff(z * FRAC_1_SQRT_2)) + z * INV_SQRT_2PI * exp(-0.5 * z * z)
}

#[inline(always)]
fn gelu_and_grad(z: f32) -> (f32, f32) {
    (gelu(z), gelu_grad(z))
}

multiversion! {
    /// `x[i] = act(x[i] + bias[i mod bias.len()])` for rows of `bias.len()`, in one pass (one
    /// read and write of `x`); identity when `act` is; `dact` (same length as `x`), when given,
    /// receives the activation's derivative at `x + bias` — what the backward multiplies by,
    /// computed here from the same sigmoid while the row is in cache.
    pub fn bias_act(
        x: &mut [f32],
        bias: Option<&[f32]>,
        act: Act,
        dact: Option<&mut [MaybeUninit<f32>]>,
    ) {
        match act {
            Act::Identity => bias_act_with(x, bias, dact, |z| (z, 1.0)),
            Act::QuickGelu => bias_act_with(x, bias, dact, quick_gelu_and_grad),
            Act::Gelu => bias_act_with(x, bias, dact, gelu_and_grad),
        }
    }
}

/// [`bias_act`] for one activation `f`, which gives the value and the derivative (the
/// derivative is optimised away where `dact` is absent).
#[inline(always)]
fn bias_act_with(
    x: &mut [f32],
    bias: Option<&[f32]>,
    dact: Option<&mut [MaybeUninit<f32>]>,
    f: impl Fn(f32) -> (f32, f32),
) {
    let n = bias.map_or(x.len(), <[f32]>::len).max(1);
    match (dact, bias) {
        (Some(d), Some(b)) => {
            for (row, dr) in x.chunks_mut(n).zip(d.chunks_mut(n)) {
                for ((v, d), &c) in row.iter_mut().zip(dr).zip(b) {
                    let (y, g) = f(*v + c);
                    d.write(g);
                    *v = y;
                }
            }
        }
        (Some(d), None) => {
            for (v, d) in x.iter_mut().zip(d) {
                let (y, g) = f(*v);
                d.write(g);
                *v = y;
            }
        }
        (None, Some(b)) => {
            for row in x.chunks_mut(n) {
                for (v, &c) in row.iter_mut().zip(b) {
                    *v = f(*v + c).0;
                }
            }
        }
        (None, None) => x.iter_mut().for_each(|v| *v = f(*v).0),
    }
}

multiversion! {
    /// `y[i] *= g[i]`.
    pub fn mul_assign(y: &mut [f32], g: &[f32]) {
        for (v, &g) in y.iter_mut().zip(g) {
            *v *= g;
        }
    }
}

multiversion! {
    /// `dy[i] *= act'(z[i])`.
    pub fn mul_act_grad(dy: &mut [f32], z: &[f32], act: Act) {
        match act {
            Act::Identity => {}
            Act::QuickGelu => dy.iter_mut().zip(z).for_each(|(d, &z)| *d *= quick_gelu_grad(z)),
            Act::Gelu => dy.iter_mut().zip(z).for_each(|(d, &z)| *d *= gelu_grad(z)),
        }
    }
}

const LANES: usize = 16;

/// Σ x, in 16 lane-wise accumulators (vectorised, and the same order on every machine).
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    let mut s = 0.0;
    for v in chunks.remainder() {
        s += v;
    }
    acc.iter().sum::<f32>() + s
}

/// Σ x·y.
#[inline(always)]
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut cx = x.chunks_exact(LANES);
    let mut cy = y.chunks_exact(LANES);
    for (a, b) in (&mut cx).zip(&mut cy) {
        for i in 0..LANES {
            acc[i] += a[i] * b[i];
        }
    }
    let mut s = 0.0;
    for (a, b) in cx.remainder().iter().zip(cy.remainder()) {
        s += a * b;
    }
    acc.iter().sum::<f32>() + s
}

/// Σ (x − c)².
#[inline(always)]
fn sum_sq_dev(x: &[f32], c: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for ch in &mut chunks {
        for i in 0..LANES {
            let d = ch[i] - c;
            acc[i] += d * d;
        }
    }
    let mut s = 0.0;
    for v in chunks.remainder() {
        s += (v - c) * (v - c);
    }
    acc.iter().sum::<f32>() + s
}

#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in chunks.remainder() {
        m = m.max(v);
    }
    acc.iter().fold(m, |a, &b| a.max(b))
}

multiversion! {
    /// Softmax of each row of `x` (rows of `d`) in place; the log-sum-exp of each row into
    /// `lse` when given. Entries equal to −∞ (masked) get 0.
    pub fn softmax_rows(x: &mut [f32], d: usize, lse: Option<&mut [f32]>) {
        let mut lse = lse;
        for (r, row) in x.chunks_exact_mut(d).enumerate() {
            let m = max(row);
            let mut acc = [0f32; LANES];
            let mut chunks = row.chunks_exact_mut(LANES);
            // `exp` clamps its input, so masked entries (−∞) are zeroed explicitly.
            for c in &mut chunks {
                for i in 0..LANES {
                    c[i] = if c[i] == f32::NEG_INFINITY { 0.0 } else { exp(c[i] - m) };
                    acc[i] += c[i];
                }
            }
            let mut s = 0.0;
            for v in chunks.into_remainder() {
                *v = if *v == f32::NEG_INFINITY { 0.0 } else { exp(*v - m) };
                s += *v;
            }
            let s = acc.iter().sum::<f32>() + s;
            let inv = 1.0 / s;
            for v in row.iter_mut() {
                *v *= inv;
            }
            if let Some(l) = lse.as_deref_mut() {
                l[r] = m + s.ln();
            }
        }
    }
}

multiversion! {
    /// `dx = y ⊙ (dy − Σ dy ⊙ y)` per row of `d`, written into `dy`.
    pub fn softmax_grad_rows(y: &[f32], dy: &mut [f32], d: usize) {
        for (yr, dr) in y.chunks_exact(d).zip(dy.chunks_exact_mut(d)) {
            let s = dot(yr, dr);
            for (g, &p) in dr.iter_mut().zip(yr) {
                *g = p * (*g - s);
            }
        }
    }
}

multiversion! {
    /// LayerNorm of rows of `d`: `y = (x − μ)/σ · γ + β`, μ and 1/σ of each row into `mean`
    /// and `rstd` (two passes over the row, as the reference computes the variance).
    pub fn layer_norm_rows(
        x: &[f32],
        y: &mut [f32],
        gamma: &[f32],
        beta: Option<&[f32]>,
        eps: f32,
        mean: &mut [f32],
        rstd: &mut [f32],
    ) {
        let d = gamma.len();
        for (r, (xr, yr)) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)).enumerate() {
            let mu = sum(xr) / d as f32;
            let var = sum_sq_dev(xr, mu) / d as f32;
            let rs = 1.0 / (var + eps).sqrt();
            mean[r] = mu;
            rstd[r] = rs;
            // Iterators of equal lengths (no bounds checks, so the loops vectorise).
            match beta {
                Some(b) => {
                    for (((y, &x), &g), &bb) in yr.iter_mut().zip(xr).zip(gamma).zip(&b[..d]) {
                        *y = (x - mu) * rs * g + bb;
                    }
                }
                None => {
                    for ((y, &x), &g) in yr.iter_mut().zip(xr).zip(gamma) {
                        *y = (x - mu) * rs * g;
                    }
                }
            }
        }
    }
}

multiversion! {
    /// LayerNorm backward for rows of `d`: `dx` (when given) and the partial sums of
    /// `dγ = Σ dy·x̂` and `dβ = Σ dy` over these rows added into `dgamma` / `dbeta`.
    #[allow(clippy::too_many_arguments)]
    pub fn layer_norm_grad_rows(
        x: &[f32],
        dy: &[f32],
        gamma: &[f32],
        mean: &[f32],
        rstd: &[f32],
        dx: Option<&mut [f32]>,
        dgamma: &mut [f32],
        dbeta: &mut [f32],
        xhat: &mut [f32],
    ) {
        let d = gamma.len();
        let (dgamma, dbeta, xhat) = (&mut dgamma[..d], &mut dbeta[..d], &mut xhat[..d]);
        let mut dx = dx;
        for (r, (xr, gr)) in x.chunks_exact(d).zip(dy.chunks_exact(d)).enumerate() {
            let (mu, rs) = (mean[r], rstd[r]);
            let (mut sa, mut sb) = ([0f32; LANES], [0f32; LANES]);
            for ((((h, &xv), &gv), dg), db) in xhat
                .iter_mut()
                .zip(xr)
                .zip(gr)
                .zip(dgamma.iter_mut())
                .zip(dbeta.iter_mut())
            {
                *h = (xv - mu) * rs;
                *dg += gv * *h;
                *db += gv;
            }
            if let Some(dx) = dx.as_deref_mut() {
                let dxr = &mut dx[r * d..(r + 1) * d];
                // g = dy·γ; dx = rstd·(g − mean(g) − x̂·mean(g·x̂))
                let mut gc = gr.chunks_exact(LANES);
                let mut mc = gamma.chunks_exact(LANES);
                let mut hc = xhat.chunks_exact(LANES);
                for ((g, m), h) in (&mut gc).zip(&mut mc).zip(&mut hc) {
                    for i in 0..LANES {
                        let v = g[i] * m[i];
                        sa[i] += v;
                        sb[i] += v * h[i];
                    }
                }
                let (mut ta, mut tb) = (0f32, 0f32);
                for ((g, m), h) in gc.remainder().iter().zip(mc.remainder()).zip(hc.remainder()) {
                    ta += g * m;
                    tb += g * m * h;
                }
                let ma = (sa.iter().sum::<f32>() + ta) / d as f32;
                let mb = (sb.iter().sum::<f32>() + tb) / d as f32;
                for (((o, &g), &m), &h) in dxr.iter_mut().zip(gr).zip(gamma).zip(xhat.iter()) {
                    *o = rs * (g * m - ma - h * mb);
                }
            }
        }
    }
}

multiversion! {
    /// Adds each row of `x` (rows of `acc.len()`) into `acc`.
    pub fn add_rows(x: &[f32], acc: &mut [f32]) {
        let n = acc.len();
        for row in x.chunks_exact(n) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    }
}

multiversion! {
    /// `dst[i] += src[i]`.
    pub fn add_assign(dst: &mut [f32], src: &[f32]) {
        for (a, &b) in dst.iter_mut().zip(src) {
            *a += b;
        }
    }
}

multiversion! {
    /// `s[i][j] = exp(s[i][j] − lse[i])` for rows of `d` (the softmax again from its
    /// log-sum-exp); −∞ (masked) gives 0.
    pub fn exp_minus_rows(s: &mut [f32], lse: &[f32], d: usize) {
        for (row, &l) in s.chunks_exact_mut(d).zip(lse) {
            for v in row.iter_mut() {
                *v = if *v == f32::NEG_INFINITY { 0.0 } else { exp(*v - l) };
            }
        }
    }
}

multiversion! {
    /// `dp[i][j] = p[i][j] · (dp[i][j] − c[i])` for rows of `d` (the softmax backward with the
    /// row terms given).
    pub fn softmax_grad_given(p: &[f32], dp: &mut [f32], c: &[f32], d: usize) {
        for ((pr, dr), &ci) in p.chunks_exact(d).zip(dp.chunks_exact_mut(d)).zip(c) {
            for (g, &pv) in dr.iter_mut().zip(pr) {
                *g = pv * (*g - ci);
            }
        }
    }
}

/// The constants of one AdamW step (see [`crate::AdamWStep`]).
#[derive(Clone, Copy)]
pub struct AdamW {
    pub b1: f32,
    pub b2: f32,
    pub f1: f32,
    pub f2: f32,
    /// 1 − β₁ᵗ, 1 − β₂ᵗ.
    pub c1: f32,
    pub c2: f32,
    pub eps: f32,
    pub lr: f32,
    /// 1 − lr·λ, when there is weight decay.
    pub keep: Option<f32>,
    /// The first step: no moments yet.
    pub first: bool,
}

multiversion! {
    /// One AdamW step over a chunk, in place: burn's formula, operation for operation.
    pub fn adamw(p: &mut [f32], m1: &mut [f32], m2: &mut [f32], g: &[f32], c: AdamW) {
        for (((pv, a), v), &gi) in p.iter_mut().zip(m1.iter_mut()).zip(m2.iter_mut()).zip(g) {
            let (na, nv) = if c.first {
                (gi * c.f1, (gi * gi) * c.f2)
            } else {
                (*a * c.b1 + gi * c.f1, *v * c.b2 + (gi * gi) * c.f2)
            };
            *a = na;
            *v = nv;
            let delta = (na / c.c1) / ((nv / c.c2).sqrt() + c.eps);
            let kept = match c.keep {
                Some(k) => *pv * k,
                None => *pv,
            };
            *pv = kept - delta * c.lr;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_std() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((a - b) / b).abs());
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "max relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37 && exp(1000.0).is_finite());
    }

    #[test]
    fn activations_match_their_definitions() {
        for i in -400..400 {
            let z = i as f32 / 37.0;
            let s = 1.0 / (1.0 + (-(1.702 * z as f64)).exp());
            let want = z as f64 * s;
            assert!((quick_gelu_and_grad(z).0 as f64 - want).abs() <= 1e-6 * want.abs().max(1e-3));
            let g = s + 1.702 * z as f64 * s * (1.0 - s);
            assert!((quick_gelu_grad(z) as f64 - g).abs() < 1e-6);
        }
    }
}
