//! Multi-head self-attention on the packed projection `[N, L, 3D]`: one task per (sequence,
//! head) over the pool, each reading its Q, K and V through strides (no head split or merge
//! copies) and writing its block of the output; scores in a per-thread `L × L` scratch. The
//! forward keeps each row's log-sum-exp so the backward rebuilds the probabilities instead of
//! storing them.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::gemm::gemm;
use super::{Base, Mat, Out, buffer, dense, dims, from_vec, mask_bits, math, slice};

struct Geometry {
    n: usize,
    l: usize,
    d: usize,
    heads: usize,
    hd: usize,
    scale: f32,
}

impl Geometry {
    fn of(qkv: &FlexTensor, heads: usize) -> Self {
        let [n, l, d3] = <[usize; 3]>::try_from(dims(qkv)).expect("a [N, L, 3D] projection");
        let d = d3 / 3;
        let hd = d / heads;
        Geometry {
            n,
            l,
            d,
            heads,
            hd,
            scale: (hd as f32).powf(-0.5),
        }
    }

    /// Q, K or V (`which` 0, 1, 2) of task `t` in a packed buffer.
    fn block(&self, base: *const f32, t: usize, which: usize) -> Mat {
        let (b, h) = (t / self.heads, t % self.heads);
        let d3 = 3 * self.d;
        Mat {
            // SAFETY: inside the [N, L, 3D] buffer.
            ptr: unsafe { base.add(b * self.l * d3 + which * self.d + h * self.hd) },
            rows: self.l,
            cols: self.hd,
            rs: d3 as isize,
            cs: 1,
        }
    }

    /// The block of task `t` in an `[N, L, D]` buffer.
    fn head(&self, base: *const f32, t: usize) -> Mat {
        let (b, h) = (t / self.heads, t % self.heads);
        Mat {
            // SAFETY: inside the [N, L, D] buffer.
            ptr: unsafe { base.add(b * self.l * self.d + h * self.hd) },
            rows: self.l,
            cols: self.hd,
            rs: self.d as isize,
            cs: 1,
        }
    }
}

fn square(ptr: *const f32, l: usize) -> Mat {
    Mat {
        ptr,
        rows: l,
        cols: l,
        rs: l as isize,
        cs: 1,
    }
}

/// `scale · Q Kᵀ` with masked entries at −∞, into `s` (`L × L`).
fn scores(g: &Geometry, base: *const f32, t: usize, mask: Option<&[bool]>, s: &mut [f32]) {
    let (q, k) = (g.block(base, t, 0), g.block(base, t, 1));
    // SAFETY: `s` is L × L and ours.
    unsafe { gemm(s.as_mut_ptr(), g.l, false, q, k.t(), g.scale) };
    if let Some(m) = mask {
        for (v, &masked) in s.iter_mut().zip(m) {
            if masked {
                *v = f32::NEG_INFINITY;
            }
        }
    }
}

/// `(out [N, L, D], lse [N, heads, L] when asked)`.
pub(crate) fn forward(
    qkv: FlexTensor,
    heads: usize,
    mask: Option<&FlexTensor>,
    want_lse: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let qkv = dense(qkv);
    let g = Geometry::of(&qkv, heads);
    let mask = mask.map(mask_bits);
    let base = Base(slice(&qkv).as_ptr());
    // Every (sequence, head) task writes its block of `out` (all of it) by a product.
    let mut out: Vec<f32> = Vec::with_capacity(g.n * g.l * g.d);
    let mut lse = want_lse.then(|| buffer(g.n * heads * g.l));
    let out_p = Out(out.as_mut_ptr());
    let lse_p = lse.as_mut().map(|v| Out(v.as_mut_ptr()));
    (0..g.n * heads).into_par_iter().for_each_init(
        || buffer(g.l * g.l),
        |s, t| {
            let base = base.get();
            scores(&g, base, t, mask.as_deref(), s);
            // SAFETY: task t owns row block t of the log-sum-exp.
            let lse_row =
                lse_p.map(|p| unsafe { std::slice::from_raw_parts_mut(p.get().add(t * g.l), g.l) });
            math::softmax_rows(s, g.l, lse_row);
            let o = g.head(out_p.get(), t);
            // SAFETY: task t owns its head's block of the output.
            unsafe {
                gemm(
                    o.ptr as *mut f32,
                    g.d,
                    false,
                    square(s.as_ptr(), g.l),
                    g.block(base, t, 2),
                    1.0,
                )
            };
        },
    );
    // SAFETY: the tasks above wrote every element.
    unsafe { out.set_len(g.n * g.l * g.d) };
    (
        from_vec(out, &[g.n, g.l, g.d]),
        lse.map(|v| from_vec(v, &[g.n, heads, g.l])),
    )
}

/// The gradient of the packed projection.
pub(crate) fn backward(
    qkv: FlexTensor,
    out: FlexTensor,
    lse: FlexTensor,
    dout: FlexTensor,
    heads: usize,
    mask: Option<&FlexTensor>,
) -> FlexTensor {
    let qkv = dense(qkv);
    let (out, lse, dout) = (dense(out), dense(lse), dense(dout));
    let g = Geometry::of(&qkv, heads);
    let mask = mask.map(mask_bits);
    let base = Base(slice(&qkv).as_ptr());
    let (out_s, lse_s, dout_s) = (slice(&out), slice(&lse), slice(&dout));
    // Every task writes its head's Q, K and V blocks of dqkv (all of it) by products.
    let mut dqkv: Vec<f32> = Vec::with_capacity(g.n * g.l * 3 * g.d);
    let dp = Out(dqkv.as_mut_ptr());
    (0..g.n * heads).into_par_iter().for_each_init(
        || (buffer(g.l * g.l), buffer(g.l * g.l), buffer(g.l)),
        |(p, ds, rows), t| {
            let base = base.get();
            let l = g.l;
            scores(&g, base, t, mask.as_deref(), p);
            math::exp_minus_rows(p, &lse_s[t * l..(t + 1) * l], l);
            let dob = g.head(dout_s.as_ptr(), t);
            let v = g.block(base, t, 2);
            // dV = Pᵀ dO
            let dv = g.block(dp.get(), t, 2);
            // SAFETY: task t owns its head's Q, K and V blocks of dqkv.
            unsafe {
                gemm(
                    dv.ptr as *mut f32,
                    3 * g.d,
                    false,
                    square(p.as_ptr(), l).t(),
                    dob,
                    1.0,
                )
            };
            // dP = dO Vᵀ
            // SAFETY: `ds` is L × L and ours.
            unsafe { gemm(ds.as_mut_ptr(), l, false, dob, v.t(), 1.0) };
            // Row terms Σⱼ dO·O of this head.
            let ob = g.head(out_s.as_ptr(), t);
            for (i, r) in rows.iter_mut().enumerate() {
                // SAFETY: row i of the head's blocks, hd elements each.
                let (a, b) = unsafe {
                    (
                        std::slice::from_raw_parts(dob.ptr.offset(i as isize * dob.rs), g.hd),
                        std::slice::from_raw_parts(ob.ptr.offset(i as isize * ob.rs), g.hd),
                    )
                };
                *r = math::dot(a, b);
            }
            math::softmax_grad_given(p, ds, rows, l);
            let dsm = square(ds.as_ptr(), l);
            let (dq, dk) = (g.block(dp.get(), t, 0), g.block(dp.get(), t, 1));
            // SAFETY: as above.
            unsafe {
                gemm(
                    dq.ptr as *mut f32,
                    3 * g.d,
                    false,
                    dsm,
                    g.block(base, t, 1),
                    g.scale,
                );
                gemm(
                    dk.ptr as *mut f32,
                    3 * g.d,
                    false,
                    dsm.t(),
                    g.block(base, t, 0),
                    g.scale,
                );
            }
        },
    );
    // SAFETY: the tasks above wrote every element.
    unsafe { dqkv.set_len(g.n * g.l * 3 * g.d) };
    from_vec(dqkv, &[g.n, g.l, 3 * g.d])
}
