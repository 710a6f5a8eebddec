//! Row operations: LayerNorm (forward with its row statistics, backward with the column sums
//! of γ and β in a fixed order) and softmax, in parallel over blocks of rows.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{buffer, dense, dims, from_vec, math, rows_per_task, slice};
use crate::{LayerNormGrads, LinearWants};

fn matrix(t: &FlexTensor) -> [usize; 2] {
    <[usize; 2]>::try_from(dims(t)).expect("a matrix")
}

pub(crate) fn layer_norm(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: Option<FlexTensor>,
    eps: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (x, gamma, beta) = (dense(x), dense(gamma), beta.map(dense));
    let [m, d] = matrix(&x);
    let (g, b) = (slice(&gamma), beta.as_ref().map(slice));
    let mut y = buffer(m * d);
    let (mut mean, mut rstd) = (buffer(m), buffer(m));
    let rows = rows_per_task(d);
    slice(&x)
        .par_chunks(rows * d)
        .zip(y.par_chunks_mut(rows * d))
        .zip(mean.par_chunks_mut(rows).zip(rstd.par_chunks_mut(rows)))
        .for_each(|((xc, yc), (mc, rc))| math::layer_norm_rows(xc, yc, g, b, eps as f32, mc, rc));
    (
        from_vec(y, &[m, d]),
        from_vec(mean, &[m]),
        from_vec(rstd, &[m]),
    )
}

pub(crate) fn layer_norm_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    rstd: FlexTensor,
    dy: FlexTensor,
    has_beta: bool,
    wants: LinearWants,
) -> LayerNormGrads<Flex> {
    let (x, gamma, mean, rstd, dy) = (dense(x), dense(gamma), dense(mean), dense(rstd), dense(dy));
    let [m, d] = matrix(&x);
    let g = slice(&gamma);
    let rows = rows_per_task(d);
    let mut dx = wants.x.then(|| buffer(m * d));
    let chunks = slice(&x)
        .par_chunks(rows * d)
        .zip(slice(&dy).par_chunks(rows * d))
        .zip(
            slice(&mean)
                .par_chunks(rows)
                .zip(slice(&rstd).par_chunks(rows)),
        );
    type Rows<'a> = ((&'a [f32], &'a [f32]), (&'a [f32], &'a [f32]));
    let task = |((xc, gc), (mc, rc)): Rows<'_>, dxc: Option<&mut [f32]>| {
        let (mut dg, mut db, mut xhat) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
        math::layer_norm_grad_rows(xc, gc, g, mc, rc, dxc, &mut dg, &mut db, &mut xhat);
        (dg, db)
    };
    let partial: Vec<(Vec<f32>, Vec<f32>)> = match dx.as_mut() {
        Some(dx) => chunks
            .zip(dx.par_chunks_mut(rows * d))
            .map(|(c, dxc)| task(c, Some(dxc)))
            .collect(),
        None => chunks.map(|c| task(c, None)).collect(),
    };
    let mut grads = LayerNormGrads {
        x: dx.map(|v| from_vec(v, &[m, d])),
        gamma: None,
        beta: None,
    };
    if wants.weights {
        let (mut dg, mut db) = (vec![0.0; d], vec![0.0; d]);
        for (pg, pb) in &partial {
            math::add_assign(&mut dg, pg);
            math::add_assign(&mut db, pb);
        }
        grads.gamma = Some(from_vec(dg, &[d]));
        if has_beta {
            grads.beta = Some(from_vec(db, &[d]));
        }
    }
    grads
}

pub(crate) fn softmax(x: FlexTensor) -> FlexTensor {
    let [m, d] = matrix(&x);
    let mut y = slice(&dense(x)).to_vec();
    y.par_chunks_mut(rows_per_task(d) * d)
        .for_each(|c| math::softmax_rows(c, d, None));
    from_vec(y, &[m, d])
}

pub(crate) fn softmax_backward(y: FlexTensor, dy: FlexTensor) -> FlexTensor {
    let [m, d] = matrix(&y);
    let y = dense(y);
    let mut dx = slice(&dense(dy)).to_vec();
    let rows = rows_per_task(d);
    dx.par_chunks_mut(rows * d)
        .zip(slice(&y).par_chunks(rows * d))
        .for_each(|(dc, yc)| math::softmax_grad_rows(yc, dc, d));
    from_vec(dx, &[m, d])
}
