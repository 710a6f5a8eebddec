//! The default bodies: each fused operation as a composition of burn tensor ops, and its
//! backward as the textbook formulas in tensor ops. Any backend runs them (CUDA through cubecl);
//! the `*_composed` functions, run on an autodiff backend, are the path before fusion (every
//! small op a graph node), against which the fused ones are tested.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{BoolTensor, FloatTensor};
use burn::tensor::{Bool, Tensor};

use crate::{Act, AdamWStep, LayerNormGrads, LinearGrads, LinearWants, prim, tensor};

/// QuickGELU's constant.
pub const QUICK_GELU: f64 = 1.702;

pub fn activate<B: Backend, const D: usize>(act: Act, z: Tensor<B, D>) -> Tensor<B, D> {
    match act {
        Act::Identity => z,
        Act::QuickGelu => z.clone() * burn::tensor::activation::sigmoid(z * QUICK_GELU),
        Act::Gelu => burn::tensor::activation::gelu(z),
    }
}

/// `act'(z)`.
pub fn activation_grad<B: Backend, const D: usize>(act: Act, z: Tensor<B, D>) -> Tensor<B, D> {
    match act {
        Act::Identity => z.ones_like(),
        Act::QuickGelu => {
            let s = burn::tensor::activation::sigmoid(z.clone() * QUICK_GELU);
            s.clone() + z * QUICK_GELU * s.clone() * (s.neg() + 1.0)
        }
        Act::Gelu => {
            // Φ(z) + z·φ(z).
            let cdf = (z.clone() / std::f64::consts::SQRT_2).erf() * 0.5 + 0.5;
            let pdf = (z.clone().powi_scalar(2) * -0.5).exp() / (2.0 * std::f64::consts::PI).sqrt();
            cdf + z * pdf
        }
    }
}

/// The pre-activation of side-by-side linears.
fn pre_activation<B: Backend>(
    x: Tensor<B, 2>,
    weights: Vec<Tensor<B, 2>>,
    biases: Vec<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let mut parts = Vec::with_capacity(weights.len());
    for (i, w) in weights.into_iter().enumerate() {
        let y = x.clone().matmul(w);
        parts.push(match biases.get(i) {
            Some(b) => y + b.clone().unsqueeze::<2>(),
            None => y,
        });
    }
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Tensor::cat(parts, 1)
    }
}

/// Side-by-side linears with their activation, composed.
pub fn linear_composed<B: Backend>(
    x: Tensor<B, 2>,
    weights: Vec<Tensor<B, 2>>,
    biases: Vec<Tensor<B, 1>>,
    act: Act,
) -> Tensor<B, 2> {
    activate(act, pre_activation(x, weights, biases))
}

pub fn linear_forward<B: Backend>(
    x: FloatTensor<B>,
    weights: Vec<FloatTensor<B>>,
    biases: Vec<FloatTensor<B>>,
    act: Act,
    keep_dact: bool,
) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    let z = pre_activation::<B>(
        tensor(x),
        weights.into_iter().map(tensor).collect(),
        biases.into_iter().map(tensor).collect(),
    );
    if act == Act::Identity {
        return (prim(z), None);
    }
    let dact = keep_dact.then(|| prim(activation_grad(act, z.clone())));
    (prim(activate(act, z)), dact)
}

pub fn linear_backward<B: Backend>(
    x: FloatTensor<B>,
    weights: Vec<FloatTensor<B>>,
    biases: Vec<FloatTensor<B>>,
    dact: Option<FloatTensor<B>>,
    dy: FloatTensor<B>,
    act: Act,
    wants: LinearWants,
) -> LinearGrads<B> {
    let x: Tensor<B, 2> = tensor(x);
    let weights: Vec<Tensor<B, 2>> = weights.into_iter().map(tensor).collect();
    let has_bias = !biases.is_empty();
    let dy: Tensor<B, 2> = tensor(dy);
    let dz = match act {
        Act::Identity => dy,
        _ => {
            let g = match dact {
                Some(d) => tensor(d),
                None => activation_grad(
                    act,
                    pre_activation(
                        x.clone(),
                        weights.clone(),
                        biases.into_iter().map(tensor).collect(),
                    ),
                ),
            };
            dy * g
        }
    };
    let mut grads = LinearGrads {
        x: None,
        weights: Vec::new(),
        biases: Vec::new(),
    };
    let mut start = 0;
    let mut dx: Option<Tensor<B, 2>> = None;
    for w in &weights {
        let n = w.dims()[1];
        let part = dz.clone().narrow(1, start, n);
        start += n;
        if wants.x {
            let g = part.clone().matmul(w.clone().transpose());
            dx = Some(match dx {
                Some(d) => d + g,
                None => g,
            });
        }
        if wants.weights {
            grads
                .weights
                .push(prim(x.clone().transpose().matmul(part.clone())));
            if has_bias {
                grads.biases.push(prim(part.sum_dim(0).reshape([n])));
            }
        }
    }
    grads.x = dx.map(prim);
    grads
}

/// Q, K, V of a packed projection as `[N, heads, L, D/heads]` each.
fn split_heads<B: Backend>(qkv: Tensor<B, 3>, heads: usize) -> [Tensor<B, 4>; 3] {
    let [n, l, d3] = qkv.dims();
    let d = d3 / 3;
    let hd = d / heads;
    [0, 1, 2].map(|i| {
        qkv.clone()
            .narrow(2, i * d, d)
            .reshape([n, l, heads, hd])
            .swap_dims(1, 2)
    })
}

fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [n, h, l, hd] = x.dims();
    x.swap_dims(1, 2).reshape([n, l, h * hd])
}

/// Scaled scores `[N, H, L, L]` with the mask applied (−∞).
fn scores<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    mask: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 4> {
    let [n, h, l, hd] = q.dims();
    let s = q.matmul(k.swap_dims(2, 3)) * (hd as f64).powf(-0.5);
    match mask {
        Some(m) => s.mask_fill(m.unsqueeze::<4>().expand([n, h, l, l]), f32::NEG_INFINITY),
        None => s,
    }
}

/// Attention composed: `(out [N, L, D], lse [N, H, L])`.
pub fn attention_composed<B: Backend>(
    qkv: Tensor<B, 3>,
    heads: usize,
    mask: Option<Tensor<B, 2, Bool>>,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let [q, k, v] = split_heads(qkv, heads);
    let s = scores(q, k, mask);
    let [n, h, l, _] = s.dims();
    let max = s.clone().max_dim(3).detach();
    let lse = (s.clone() - max.clone()).exp().sum_dim(3).log() + max;
    let p = (s - lse.clone()).exp();
    (merge_heads(p.matmul(v)), lse.reshape([n, h, l]))
}

pub fn attention_forward<B: Backend>(
    qkv: FloatTensor<B>,
    heads: usize,
    mask: Option<BoolTensor<B>>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let (out, lse) = attention_composed::<B>(tensor(qkv), heads, mask.map(Tensor::from_primitive));
    (prim(out), prim(lse))
}

pub fn attention_backward<B: Backend>(
    qkv: FloatTensor<B>,
    out: FloatTensor<B>,
    lse: FloatTensor<B>,
    dout: FloatTensor<B>,
    heads: usize,
    mask: Option<BoolTensor<B>>,
) -> FloatTensor<B> {
    let qkv: Tensor<B, 3> = tensor(qkv);
    let [n, l, d3] = qkv.dims();
    let hd = d3 / 3 / heads;
    let scale = (hd as f64).powf(-0.5);
    let [q, k, v] = split_heads(qkv, heads);
    let s = scores(q.clone(), k.clone(), mask.map(Tensor::from_primitive));
    let lse: Tensor<B, 3> = tensor(lse);
    let p = (s - lse.reshape([n, heads, l, 1])).exp();
    let split = |t: Tensor<B, 3>| t.reshape([n, l, heads, hd]).swap_dims(1, 2);
    let dout = split(tensor(dout));
    let out = split(tensor(out));
    let dv = p.clone().swap_dims(2, 3).matmul(dout.clone());
    let dp = dout.clone().matmul(v.swap_dims(2, 3));
    let row = (dout * out).sum_dim(3);
    let ds = p * (dp - row);
    let dq = ds.clone().matmul(k) * scale;
    let dk = ds.swap_dims(2, 3).matmul(q) * scale;
    prim(Tensor::cat(
        vec![merge_heads(dq), merge_heads(dk), merge_heads(dv)],
        2,
    ))
}

/// LayerNorm composed: `(y, mean [M], rstd [M])`.
pub fn layer_norm_composed<B: Backend>(
    x: Tensor<B, 2>,
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> (Tensor<B, 2>, Tensor<B, 1>, Tensor<B, 1>) {
    let m = x.dims()[0];
    let mean = x.clone().mean_dim(1);
    let centred = x - mean.clone();
    let var = centred.clone().powi_scalar(2).mean_dim(1);
    let rstd = (var + eps).sqrt().recip();
    let y = centred * rstd.clone() * gamma.unsqueeze::<2>();
    let y = match beta {
        Some(b) => y + b.unsqueeze::<2>(),
        None => y,
    };
    (y, mean.reshape([m]), rstd.reshape([m]))
}

pub fn layer_norm_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: Option<FloatTensor<B>>,
    eps: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let (y, mean, rstd) = layer_norm_composed::<B>(tensor(x), tensor(gamma), beta.map(tensor), eps);
    (prim(y), prim(mean), prim(rstd))
}

pub fn layer_norm_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    rstd: FloatTensor<B>,
    dy: FloatTensor<B>,
    has_beta: bool,
    wants: LinearWants,
) -> LayerNormGrads<B> {
    let x: Tensor<B, 2> = tensor(x);
    let [m, d] = x.dims();
    let mean: Tensor<B, 1> = tensor(mean);
    let rstd: Tensor<B, 2> = tensor::<B, 1>(rstd).reshape([m, 1]);
    let gamma: Tensor<B, 1> = tensor(gamma);
    let dy: Tensor<B, 2> = tensor(dy);
    let xhat = (x - mean.reshape([m, 1])) * rstd.clone();
    let mut grads = LayerNormGrads {
        x: None,
        gamma: None,
        beta: None,
    };
    if wants.weights {
        grads.gamma = Some(prim((dy.clone() * xhat.clone()).sum_dim(0).reshape([d])));
        if has_beta {
            grads.beta = Some(prim(dy.clone().sum_dim(0).reshape([d])));
        }
    }
    if wants.x {
        let g = dy * gamma.unsqueeze::<2>();
        let a = g.clone().mean_dim(1);
        let b = (g.clone() * xhat.clone()).mean_dim(1);
        grads.x = Some(prim((g - a - xhat * b) * rstd));
    }
    grads
}

pub fn softmax<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let x: Tensor<B, 2> = tensor(x);
    prim(burn::tensor::activation::softmax(x, 1))
}

pub fn softmax_backward<B: Backend>(y: FloatTensor<B>, dy: FloatTensor<B>) -> FloatTensor<B> {
    let y: Tensor<B, 2> = tensor(y);
    let dy: Tensor<B, 2> = tensor(dy);
    let row = (dy.clone() * y.clone()).sum_dim(1);
    prim(y * (dy - row))
}

/// burn's `AdamW` step, op by op (the same operations in the same order).
pub fn adamw_step<B: Backend>(
    param: FloatTensor<B>,
    grad: FloatTensor<B>,
    moments: Option<(FloatTensor<B>, FloatTensor<B>)>,
    s: AdamWStep,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let p: Tensor<B, 1> = tensor(param);
    let g: Tensor<B, 1> = tensor(grad);
    let (f1, f2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    let (m1, m2) = match moments {
        Some((m1, m2)) => (
            tensor::<B, 1>(m1)
                .mul_scalar(s.beta_1)
                .add(g.clone().mul_scalar(f1)),
            tensor::<B, 1>(m2)
                .mul_scalar(s.beta_2)
                .add(g.square().mul_scalar(f2)),
        ),
        None => (g.clone().mul_scalar(f1), g.square().mul_scalar(f2)),
    };
    let t = s.time as i32;
    let m1c = m1.clone().div_scalar(1f32 - s.beta_1.powi(t));
    let m2c = m2.clone().div_scalar(1f32 - s.beta_2.powi(t));
    let delta = m1c.div(m2c.sqrt().add_scalar(s.epsilon));
    let decay = s.lr * s.weight_decay as f64;
    let p = if decay == 0.0 {
        p
    } else {
        p.mul_scalar(1.0 - decay)
    };
    (prim(p - delta.mul_scalar(s.lr)), prim(m1), prim(m2))
}

pub fn patchify<B: Backend>(pixels: FloatTensor<B>, p: usize) -> FloatTensor<B> {
    let x: Tensor<B, 4> = tensor(pixels);
    let [n, c, h, w] = x.dims();
    let (gh, gw) = (h / p, w / p);
    prim(
        x.reshape([n, c, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([n, gh * gw, c * p * p]),
    )
}

/// The inverse of [`patchify`] (its backward): patches → images `[n, c, h, w]`.
pub fn unpatchify<B: Backend>(
    patches: FloatTensor<B>,
    p: usize,
    [n, c, h, w]: [usize; 4],
) -> FloatTensor<B> {
    let x: Tensor<B, 3> = tensor(patches);
    let (gh, gw) = (h / p, w / p);
    prim(
        x.reshape([n, gh, gw, c, p, p])
            .permute([0, 3, 1, 4, 2, 5])
            .reshape([n, c, h, w]),
    )
}
