//! Fused transformer operations as a burn backend extension.
//!
//! The blocks of the CLIP towers, the Transf head and the BERT encoders spend their time in a
//! handful of operations: the Q/K/V projection, scaled-dot-product attention, a linear layer
//! with its bias and activation, LayerNorm and softmax. Composed from burn's tensor ops they
//! cost many passes over memory, single-threaded element-wise loops on the CPU backend and, under
//! autodiff, a graph node per small op. [`FusedBackend`] makes each one a single operation:
//!
//! - every method has a default body, the composition of tensor ops
//!   ([`reference`]), so every backend (CUDA through cubecl included) works unchanged;
//! - `Flex` (the CPU backend) overrides them with native multi-threaded kernels ([`flex`]);
//! - `Autodiff<B>` implements them as one graph node each whose backward calls the inner
//!   backend's backward method ([`autodiff`]): native kernels on `Flex`, the reference formulas
//!   elsewhere.
//!
//! Models call the free functions of this module ([`linear`], [`linears`], [`attention`],
//! [`layer_norm`], [`softmax`]); [`Mode`] switches between the fused path, the reference
//! bodies (what CUDA runs, on the CPU) and the plain composition under autodiff (the path
//! before this crate), so tests and benchmarks compare the three in one process.

pub mod autodiff;
#[cfg(feature = "cuda")]
mod cuda;
pub mod flex;
#[cfg(feature = "ndarray")]
mod ndarray;
pub mod optim;
pub mod reference;

use std::cell::Cell;

use burn::tensor::backend::Backend;
use burn::tensor::ops::{BoolTensor, FloatTensor};
use burn::tensor::{Bool, Tensor, TensorPrimitive};

/// The activation that follows a linear layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    Identity,
    /// `x · σ(1.702 x)` (OpenAI's CLIP).
    QuickGelu,
    /// The exact (erf) GELU (BERT).
    Gelu,
}

/// Which implementation the free functions of this crate use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The backend's fused operations (native kernels on `Flex`).
    Fused,
    /// The fused operations with their default bodies on every backend: on `Flex` this is the
    /// path CUDA takes (one autodiff node per operation, reference formulas inside).
    Reference,
    /// No fused operation: the composition of tensor ops, differentiated op by op.
    Decomposed,
}

thread_local! {
    static MODE: Cell<Option<Mode>> = const { Cell::new(None) };
}

/// The mode of this thread: set by [`with_mode`], else `T4V_FUSED` (`fused`, `reference`,
/// `decomposed`), else [`Mode::Fused`].
pub fn mode() -> Mode {
    MODE.with(|m| m.get()).unwrap_or_else(default_mode)
}

fn default_mode() -> Mode {
    static DEFAULT: std::sync::OnceLock<Mode> = std::sync::OnceLock::new();
    *DEFAULT.get_or_init(|| match std::env::var("T4V_FUSED").as_deref() {
        Ok("reference") => Mode::Reference,
        Ok("decomposed") => Mode::Decomposed,
        _ => Mode::Fused,
    })
}

/// Runs `f` with this thread in `mode` (the previous mode is restored after).
pub fn with_mode<R>(mode: Mode, f: impl FnOnce() -> R) -> R {
    let before = MODE.with(|m| m.replace(Some(mode)));
    struct Restore(Option<Mode>);
    impl Drop for Restore {
        fn drop(&mut self) {
            MODE.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(before);
    f()
}

/// What a linear backward should compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearWants {
    pub x: bool,
    pub weights: bool,
}

/// Gradients of a (multi-)linear: `x` when asked, one per weight and bias when asked.
pub struct LinearGrads<B: Backend> {
    pub x: Option<FloatTensor<B>>,
    pub weights: Vec<FloatTensor<B>>,
    pub biases: Vec<FloatTensor<B>>,
}

/// Gradients of a LayerNorm.
pub struct LayerNormGrads<B: Backend> {
    pub x: Option<FloatTensor<B>>,
    pub gamma: Option<FloatTensor<B>>,
    pub beta: Option<FloatTensor<B>>,
}

/// The hyper-parameters of one AdamW step (burn's `AdamW`: decoupled weight decay, bias
/// correction, epsilon added to the corrected √v).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
    /// The step number, from 1.
    pub time: usize,
}

/// The fused operations of a transformer block.
///
/// Shapes: a linear's input is `[M, K]`, its weights `[K, Nᵢ]` (burn's layout), its biases
/// `[Nᵢ]`, and its output the outputs of all weights side by side, `[M, ΣNᵢ]` (one weight for
/// a plain linear, three for the Q/K/V projection). Attention takes that packed `[N, L, 3D]`
/// projection (heads of width D / `heads` side by side in each third) and a `[L, L]` mask
/// (true = not attended; every row must attend somewhere), scales by `1/√(D/heads)` and
/// returns `[N, L, D]`. LayerNorm and softmax work on the last dimension of `[M, D]`.
///
/// The `*_forward` / `*_backward` pairs are what `Autodiff<Self>` calls: the forward also
/// returns what its backward needs (the activation's derivative, the softmax's log-sum-exp per row, the
/// LayerNorm's mean and 1/σ per row).
pub trait FusedBackend: Backend {
    fn fused_linear(
        x: FloatTensor<Self>,
        weights: Vec<FloatTensor<Self>>,
        biases: Vec<FloatTensor<Self>>,
        act: Act,
    ) -> FloatTensor<Self> {
        reference::linear_forward::<Self>(x, weights, biases, act, false).0
    }

    /// `(y, dact)`: `dact`, the activation's derivative at the pre-activation, when `act` is
    /// not the identity (what the backward multiplies the incoming gradient by).
    fn linear_forward(
        x: FloatTensor<Self>,
        weights: Vec<FloatTensor<Self>>,
        biases: Vec<FloatTensor<Self>>,
        act: Act,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        reference::linear_forward::<Self>(x, weights, biases, act, true)
    }

    /// `dact` may be absent (gradient checkpointing drops it): it is then recomputed.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        x: FloatTensor<Self>,
        weights: Vec<FloatTensor<Self>>,
        biases: Vec<FloatTensor<Self>>,
        dact: Option<FloatTensor<Self>>,
        dy: FloatTensor<Self>,
        act: Act,
        wants: LinearWants,
    ) -> LinearGrads<Self> {
        reference::linear_backward::<Self>(x, weights, biases, dact, dy, act, wants)
    }

    fn fused_attention(
        qkv: FloatTensor<Self>,
        heads: usize,
        mask: Option<BoolTensor<Self>>,
    ) -> FloatTensor<Self> {
        reference::attention_forward::<Self>(qkv, heads, mask).0
    }

    /// `(out, lse)`, `lse` `[N, heads, L]`: the log-sum-exp of each row of scaled scores.
    fn attention_forward(
        qkv: FloatTensor<Self>,
        heads: usize,
        mask: Option<BoolTensor<Self>>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference::attention_forward::<Self>(qkv, heads, mask)
    }

    /// The gradient of the packed projection, `[N, L, 3D]`.
    fn attention_backward(
        qkv: FloatTensor<Self>,
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        dout: FloatTensor<Self>,
        heads: usize,
        mask: Option<BoolTensor<Self>>,
    ) -> FloatTensor<Self> {
        reference::attention_backward::<Self>(qkv, out, lse, dout, heads, mask)
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
        eps: f64,
    ) -> FloatTensor<Self> {
        reference::layer_norm_forward::<Self>(x, gamma, beta, eps).0
    }

    /// `(y, mean, rstd)`, the last two `[M]`.
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        reference::layer_norm_forward::<Self>(x, gamma, beta, eps)
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        has_beta: bool,
        wants: LinearWants,
    ) -> LayerNormGrads<Self> {
        reference::layer_norm_backward::<Self>(x, gamma, mean, rstd, dy, has_beta, wants)
    }

    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::softmax::<Self>(x)
    }

    /// Images `[N, C, H, W]` → their `p × p` patches `[N, (H/p)·(W/p), C·p·p]` (row-major
    /// patches, each `C, p, p` flattened): the input of a stride-p patch convolution as a
    /// product.
    fn fused_patchify(pixels: FloatTensor<Self>, p: usize) -> FloatTensor<Self> {
        reference::patchify::<Self>(pixels, p)
    }

    /// `a + b` of equal shapes: a transformer's residual connection.
    fn fused_residual(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_add(a, b)
    }

    fn softmax_backward(y: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::softmax_backward::<Self>(y, dy)
    }

    /// One AdamW step of a parameter: `(param, moment_1, moment_2)`; `moments` is absent at
    /// the first step.
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moments: Option<(FloatTensor<Self>, FloatTensor<Self>)>,
        step: AdamWStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        reference::adamw_step::<Self>(param, grad, moments, step)
    }
}

pub(crate) fn prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

pub(crate) fn tensor<B: Backend, const D: usize>(p: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// `act(x · w + b)` over the last dimension of `x`.
pub fn linear<B: FusedBackend, const D: usize>(
    x: Tensor<B, D>,
    w: Tensor<B, 2>,
    b: Option<Tensor<B, 1>>,
    act: Act,
) -> Tensor<B, D> {
    match b {
        Some(b) => linears(x, vec![w], vec![b], act),
        None => linears(x, vec![w], vec![], act),
    }
}

/// Several linears of one input, their outputs side by side on the last dimension (the Q/K/V
/// projection): one pass over `x`, one output buffer. `biases` is empty or one per weight.
pub fn linears<B: FusedBackend, const D: usize>(
    x: Tensor<B, D>,
    weights: Vec<Tensor<B, 2>>,
    biases: Vec<Tensor<B, 1>>,
    act: Act,
) -> Tensor<B, D> {
    assert!(
        biases.is_empty() || biases.len() == weights.len(),
        "linears: {} biases for {} weights",
        biases.len(),
        weights.len()
    );
    let dims = x.dims();
    let k = dims[D - 1];
    let m = dims[..D - 1].iter().product::<usize>();
    let n: usize = weights.iter().map(|w| w.dims()[1]).sum();
    for w in &weights {
        assert_eq!(
            w.dims()[0],
            k,
            "linears: weight {:?} for inputs of width {k}",
            w.dims()
        );
    }
    let x2: Tensor<B, 2> = x.reshape([m, k]);
    let y: Tensor<B, 2> = if mode() == Mode::Decomposed {
        reference::linear_composed(x2, weights, biases, act)
    } else {
        tensor(B::fused_linear(
            prim(x2),
            weights.into_iter().map(prim).collect(),
            biases.into_iter().map(prim).collect(),
            act,
        ))
    };
    let mut out = dims;
    out[D - 1] = n;
    y.reshape(out)
}

/// Multi-head self-attention of a packed projection `[N, L, 3D]` (Q, K, V side by side, as
/// [`linears`] makes it) → `[N, L, D]`, scaled by `1/√(D/heads)`; `mask` `[L, L]`, true where a
/// query may not attend a key.
pub fn attention<B: FusedBackend>(
    qkv: Tensor<B, 3>,
    heads: usize,
    mask: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 3> {
    let [_, l, d3] = qkv.dims();
    assert!(
        d3 % 3 == 0 && (d3 / 3) % heads == 0,
        "attention: packed width {d3} is not 3 × a multiple of {heads} heads"
    );
    if let Some(m) = &mask {
        assert_eq!(m.dims(), [l, l], "attention: mask for {l} tokens");
    }
    if mode() == Mode::Decomposed {
        return reference::attention_composed(qkv, heads, mask).0;
    }
    tensor(B::fused_attention(
        prim(qkv),
        heads,
        mask.map(|m| m.into_primitive()),
    ))
}

/// LayerNorm over the last dimension.
pub fn layer_norm<B: FusedBackend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> Tensor<B, D> {
    let dims = x.dims();
    let d = dims[D - 1];
    let x2: Tensor<B, 2> = x.reshape([dims[..D - 1].iter().product::<usize>(), d]);
    let y: Tensor<B, 2> = if mode() == Mode::Decomposed {
        reference::layer_norm_composed(x2, gamma, beta, eps).0
    } else {
        tensor(B::fused_layer_norm(
            prim(x2),
            prim(gamma),
            beta.map(prim),
            eps,
        ))
    };
    y.reshape(dims)
}

/// Images `[N, C, H, W]` → patches `[N, (H/p)·(W/p), C·p·p]` (see
/// [`FusedBackend::fused_patchify`]).
pub fn patchify<B: FusedBackend>(pixels: Tensor<B, 4>, p: usize) -> Tensor<B, 3> {
    let [_, _, h, w] = pixels.dims();
    assert!(
        p > 0 && h % p == 0 && w % p == 0,
        "patchify: {h}×{w} images do not split into {p}-pixel patches"
    );
    if mode() == Mode::Decomposed {
        return tensor(reference::patchify::<B>(prim(pixels), p));
    }
    tensor(B::fused_patchify(prim(pixels), p))
}

/// `x + f(x)`, a residual connection: one operation (in parallel on flex), and what gradient
/// checkpointing keeps.
pub fn residual<B: FusedBackend, const D: usize>(
    x: Tensor<B, D>,
    fx: Tensor<B, D>,
) -> Tensor<B, D> {
    assert_eq!(x.dims(), fx.dims(), "residual: shapes differ");
    if mode() == Mode::Decomposed {
        return x + fx;
    }
    tensor(B::fused_residual(prim(x), prim(fx)))
}

/// Softmax over the last dimension.
pub fn softmax<B: FusedBackend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let dims = x.dims();
    let d = dims[D - 1];
    let x2: Tensor<B, 2> = x.reshape([dims[..D - 1].iter().product::<usize>(), d]);
    let y: Tensor<B, 2> = if mode() == Mode::Decomposed {
        burn::tensor::activation::softmax(x2, 1)
    } else {
        tensor(B::fused_softmax(prim(x2)))
    };
    y.reshape(dims)
}

/// An autodiff backend whose operations and whose inner backend's (validation runs on it) are
/// fused: what training code is generic over.
pub trait FusedAutodiffBackend:
    burn::tensor::backend::AutodiffBackend<InnerBackend: FusedBackend> + FusedBackend
{
}

impl<B> FusedAutodiffBackend for B where
    B: burn::tensor::backend::AutodiffBackend<InnerBackend: FusedBackend> + FusedBackend
{
}
