//! Side-by-side linears with their bias and activation: one GEMM per weight straight into its
//! columns of the output, then one parallel pass for bias and activation; the backward's GEMMs
//! read the weights and the output gradient through strides (no transposed copies).

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::gemm::gemm;
use super::{Mat, dense, dims, filled, from_vec, math, rows_per_task, slice};
use crate::{Act, LinearGrads, LinearWants};

fn concat_biases(biases: &[FlexTensor]) -> Option<Vec<f32>> {
    if biases.is_empty() {
        return None;
    }
    let mut b = Vec::new();
    for t in biases {
        b.extend_from_slice(slice(&dense(t.clone())));
    }
    Some(b)
}

/// `act(x · [w₀ | w₁ | …] + [b₀ | b₁ | …])`, and the activation's derivative there when
/// `keep_dact` and the activation is not the identity.
pub(crate) fn forward(
    x: FlexTensor,
    weights: &[FlexTensor],
    biases: &[FlexTensor],
    act: Act,
    keep_dact: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let a = Mat::of(&x);
    let m = a.rows;
    let n: usize = weights.iter().map(|w| dims(w)[1]).sum();
    // SAFETY: the products write columns off..off + cols of every row, covering all n.
    let mut y = unsafe {
        filled(m * n, |y| {
            let mut off = 0;
            for w in weights {
                let b = Mat::of(w);
                assert_eq!(
                    b.rows, a.cols,
                    "linear: weight rows {} for inputs of width {}",
                    b.rows, a.cols
                );
                gemm(y.add(off), n, false, a, b, 1.0);
                off += b.cols;
            }
        })
    };
    let bias = concat_biases(biases);
    let rows = rows_per_task(n);
    // The activation's derivative, when the backward needs it, written by the same pass.
    let keep = keep_dact && act != Act::Identity;
    let mut dact = Vec::with_capacity(if keep { m * n } else { 0 });
    if keep {
        y.par_chunks_mut(rows * n)
            .zip(dact.spare_capacity_mut()[..m * n].par_chunks_mut(rows * n))
            .for_each(|(yc, dc)| math::bias_act(yc, bias.as_deref(), act, Some(dc)));
        // SAFETY: the pass wrote every element.
        unsafe { dact.set_len(m * n) };
    } else if bias.is_some() || act != Act::Identity {
        y.par_chunks_mut(rows * n)
            .for_each(|yc| math::bias_act(yc, bias.as_deref(), act, None));
    }
    let dact = keep.then(|| from_vec(dact, &[m, n]));
    (from_vec(y, &[m, n]), dact)
}

/// Column sums of a row-major `[m, n]` matrix, in a fixed order.
fn column_sums(z: &[f32], n: usize) -> Vec<f32> {
    let rows = rows_per_task(n);
    let partial: Vec<Vec<f32>> = z
        .par_chunks(rows * n)
        .map(|c| {
            let mut acc = vec![0.0; n];
            math::add_rows(c, &mut acc);
            acc
        })
        .collect();
    let mut out = vec![0.0; n];
    for p in &partial {
        math::add_assign(&mut out, p);
    }
    out
}

pub(crate) fn backward(
    x: FlexTensor,
    weights: &[FlexTensor],
    biases: &[FlexTensor],
    dact: Option<FlexTensor>,
    dy: FlexTensor,
    act: Act,
    wants: LinearWants,
) -> LinearGrads<burn::backend::Flex> {
    let mut dz = dense(dy);
    let [m, n] = <[usize; 2]>::try_from(dims(&dz)).expect("a matrix gradient");
    if act != Act::Identity {
        let rows = rows_per_task(n);
        // Scaled in place when the gradient is ours alone, dense from offset 0.
        let in_place = dz.layout().start_offset() == 0
            && dz
                .try_storage_mut::<f32>()
                .is_some_and(|s| s.len() == m * n);
        if !in_place {
            dz = from_vec(slice(&dz).to_vec(), &[m, n]);
        }
        let g = dz.try_storage_mut::<f32>().expect("a unique gradient");
        match dact {
            Some(d) => {
                let d = dense(d);
                g.par_chunks_mut(rows * n)
                    .zip(slice(&d).par_chunks(rows * n))
                    .for_each(|(gc, dc)| math::mul_assign(gc, dc));
            }
            // Checkpointing dropped it: the pre-activation again, then the derivative.
            None => {
                let z = forward(x.clone(), weights, biases, Act::Identity, false).0;
                g.par_chunks_mut(rows * n)
                    .zip(slice(&z).par_chunks(rows * n))
                    .for_each(|(gc, zc)| math::mul_act_grad(gc, zc, act));
            }
        }
    }
    let d = Mat::of(&dz);
    let a = Mat::of(&x);
    let k = a.cols;
    let mut grads = LinearGrads {
        x: None,
        weights: Vec::new(),
        biases: Vec::new(),
    };
    let part = |off: usize, cols: usize| Mat {
        // SAFETY: column `off` of the gradient matrix.
        ptr: unsafe { d.ptr.offset(off as isize * d.cs) },
        cols,
        ..d
    };
    if wants.x {
        // SAFETY: the first product writes all of dx (m × k), the others add to it.
        let dx = unsafe {
            filled(m * k, |dx| {
                let mut off = 0;
                for (i, w) in weights.iter().enumerate() {
                    let wm = Mat::of(w);
                    gemm(dx, k, i > 0, part(off, wm.cols), wm.t(), 1.0);
                    off += wm.cols;
                }
            })
        };
        grads.x = Some(from_vec(dx, &[m, k]));
    }
    if wants.weights {
        let mut off = 0;
        for w in weights {
            let cols = dims(w)[1];
            // SAFETY: the product writes all of dw (k × cols).
            let dw = unsafe {
                filled(k * cols, |dw| {
                    gemm(dw, cols, false, a.t(), part(off, cols), 1.0)
                })
            };
            grads.weights.push(from_vec(dw, &[k, cols]));
            off += cols;
        }
        if !biases.is_empty() {
            let sums = column_sums(slice(&dz), n);
            let mut off = 0;
            for w in weights {
                let cols = dims(w)[1];
                grads
                    .biases
                    .push(from_vec(sums[off..off + cols].to_vec(), &[cols]));
                off += cols;
            }
        }
    }
    grads
}
