//! The AdamW step: parameter and moments updated in place (when nothing else holds them) in
//! one parallel pass.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{dense, dims, from_vec, math, owned, slice};
use crate::AdamWStep;

const CHUNK: usize = 1 << 14;

pub(crate) fn step(
    param: FlexTensor,
    grad: FlexTensor,
    moments: Option<(FlexTensor, FlexTensor)>,
    s: AdamWStep,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = dims(&param);
    let n: usize = shape.iter().product();
    let first = moments.is_none();
    let mut p = owned(param);
    let g = dense(grad);
    let (mut m1, mut m2) = match moments {
        Some((a, b)) => (owned(a), owned(b)),
        None => (
            from_vec(vec![0.0; n], &shape),
            from_vec(vec![0.0; n], &shape),
        ),
    };
    let t = s.time as i32;
    let decay = s.lr * s.weight_decay as f64;
    let c = math::AdamW {
        b1: s.beta_1,
        b2: s.beta_2,
        f1: 1.0 - s.beta_1,
        f2: 1.0 - s.beta_2,
        c1: 1f32 - s.beta_1.powi(t),
        c2: 1f32 - s.beta_2.powi(t),
        eps: s.epsilon,
        lr: s.lr as f32,
        keep: (decay != 0.0).then_some((1.0 - decay) as f32),
        first,
    };
    {
        let ps = p.try_storage_mut::<f32>().expect("owned");
        let a = m1.try_storage_mut::<f32>().expect("owned");
        let b = m2.try_storage_mut::<f32>().expect("owned");
        ps[..n]
            .par_chunks_mut(CHUNK)
            .zip(a[..n].par_chunks_mut(CHUNK))
            .zip(b[..n].par_chunks_mut(CHUNK))
            .zip(slice(&g).par_chunks(CHUNK))
            .for_each(|(((pc, ac), bc), gc)| math::adamw(pc, ac, bc, gc, c));
    }
    (p, m1, m2)
}
