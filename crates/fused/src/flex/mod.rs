//! Native kernels of the fused operations for burn's `Flex` CPU backend: GEMMs on strided views
//! (no copies for head splits, merges or transposed weights), epilogues and row operations in
//! parallel over the rayon pool, element-wise math vectorised ([`math`]). Every reduction has a
//! fixed order (chunks of fixed size, summed in order), so results do not depend on the number
//! of threads.
//!
//! Tensors that are not `f32` fall back to the reference bodies; so does everything in
//! [`Mode::Reference`](crate::Mode::Reference).

mod adamw;
mod attention;
pub mod gemm;
mod linear;
pub mod math;
mod norm;

use burn::backend::Flex;
use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::ops::{BoolTensor, FloatTensor};
use burn::tensor::{Bytes, DType, Shape, TensorMetadata};
use rayon::prelude::*;

use crate::{
    Act, AdamWStep, FusedBackend, LayerNormGrads, LinearGrads, LinearWants, Mode, reference,
};

/// A read-only `f32` matrix view: base pointer (at the view's offset) and element strides.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    pub ptr: *const f32,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

// SAFETY: a `Mat` only reads memory kept alive by the tensor it was made from, which outlives
// every parallel task using it.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

impl Mat {
    /// The view of a 2-D tensor, any strides.
    pub fn of(t: &FlexTensor) -> Mat {
        let l = t.layout();
        let s = l.shape();
        assert_eq!(
            s.num_dims(),
            2,
            "a matrix view of a rank-{} tensor",
            s.num_dims()
        );
        let data: &[f32] = t.storage();
        Mat {
            // SAFETY: the offset is inside the buffer (it is the layout's own).
            ptr: unsafe { data.as_ptr().add(l.start_offset()) },
            rows: s[0],
            cols: s[1],
            rs: l.strides()[0],
            cs: l.strides()[1],
        }
    }

    pub fn t(self) -> Mat {
        Mat {
            ptr: self.ptr,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// A writable pointer shared by parallel tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct Out(pub *mut f32);
// SAFETY: tasks sharing an `Out` write disjoint elements (each kernel says which).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    pub fn get(self) -> *mut f32 {
        self.0
    }
}

/// A read-only pointer shared by parallel tasks.
#[derive(Clone, Copy)]
pub(crate) struct Base(pub *const f32);
// SAFETY: read-only, into a buffer that outlives the tasks.
unsafe impl Send for Base {}
unsafe impl Sync for Base {}

impl Base {
    /// The pointer (a method, so closures capture the `Send` wrapper, not the raw field).
    pub fn get(self) -> *const f32 {
        self.0
    }
}

pub(crate) fn is_f32(t: &FlexTensor) -> bool {
    t.dtype() == DType::F32
}

/// The tensor in row-major order (a copy only when it is not already).
pub(crate) fn dense(t: FlexTensor) -> FlexTensor {
    if t.layout().contiguous_offsets().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The elements of a row-major tensor.
pub(crate) fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a dense f32 tensor")
}

pub(crate) fn from_vec(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    debug_assert_eq!(v.len(), shape.iter().product::<usize>());
    FlexTensor::new(
        Bytes::from_elems(v),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    )
}

/// A zeroed buffer of `n` floats.
pub(crate) fn buffer(n: usize) -> Vec<f32> {
    vec![0.0; n]
}

/// A buffer of `n` floats written by `fill` through its pointer, with no zeroing pass first
/// (GEMM outputs: a tenth of the small models' time went to zeroing them).
///
/// # Safety
/// `fill` must write all `n` elements.
pub(crate) unsafe fn filled(n: usize, fill: impl FnOnce(*mut f32)) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    fill(v.as_mut_ptr());
    // SAFETY: the caller's contract: every element was written.
    unsafe { v.set_len(n) };
    v
}

/// The elements of a tensor as an owned row-major buffer: its own storage when nothing else
/// shares it (updated in place), else a copy.
pub(crate) fn owned(mut t: FlexTensor) -> FlexTensor {
    let shape = dims(&t);
    let n: usize = shape.iter().product();
    let reusable = t.layout().contiguous_offsets() == Some((0, n))
        && t.try_storage_mut::<f32>().is_some_and(|s| s.len() == n);
    if reusable {
        t
    } else {
        from_vec(slice(&dense(t)).to_vec(), &shape)
    }
}

/// Rows per parallel task for row-wise work on rows of `d` elements: about 16k elements a
/// task, whatever the thread count (so reductions keep one order).
pub(crate) fn rows_per_task(d: usize) -> usize {
    (16_384 / d.max(1)).max(1)
}

fn native(ts: &[&FlexTensor]) -> bool {
    crate::mode() == Mode::Fused && ts.iter().all(|t| is_f32(t))
}

/// The booleans of a mask.
pub(crate) fn mask_bits(mask: &FlexTensor) -> Vec<bool> {
    mask.clone().into_data().iter::<bool>().collect()
}

impl FusedBackend for Flex {
    fn fused_linear(
        x: FloatTensor<Self>,
        weights: Vec<FloatTensor<Self>>,
        biases: Vec<FloatTensor<Self>>,
        act: Act,
    ) -> FloatTensor<Self> {
        let all: Vec<&FlexTensor> = std::iter::once(&x).chain(&weights).chain(&biases).collect();
        if !native(&all) {
            return reference::linear_forward::<Self>(x, weights, biases, act, false).0;
        }
        linear::forward(x, &weights, &biases, act, false).0
    }

    fn linear_forward(
        x: FloatTensor<Self>,
        weights: Vec<FloatTensor<Self>>,
        biases: Vec<FloatTensor<Self>>,
        act: Act,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        let all: Vec<&FlexTensor> = std::iter::once(&x).chain(&weights).chain(&biases).collect();
        if !native(&all) {
            return reference::linear_forward::<Self>(x, weights, biases, act, true);
        }
        linear::forward(x, &weights, &biases, act, true)
    }

    fn linear_backward(
        x: FloatTensor<Self>,
        weights: Vec<FloatTensor<Self>>,
        biases: Vec<FloatTensor<Self>>,
        dact: Option<FloatTensor<Self>>,
        dy: FloatTensor<Self>,
        act: Act,
        wants: LinearWants,
    ) -> LinearGrads<Self> {
        let all: Vec<&FlexTensor> = [&x, &dy]
            .into_iter()
            .chain(&weights)
            .chain(&biases)
            .collect();
        if !native(&all) {
            return reference::linear_backward::<Self>(x, weights, biases, dact, dy, act, wants);
        }
        linear::backward(x, &weights, &biases, dact, dy, act, wants)
    }

    fn fused_attention(
        qkv: FloatTensor<Self>,
        heads: usize,
        mask: Option<BoolTensor<Self>>,
    ) -> FloatTensor<Self> {
        if !native(&[&qkv]) {
            return reference::attention_forward::<Self>(qkv, heads, mask).0;
        }
        attention::forward(qkv, heads, mask.as_ref(), false).0
    }

    fn attention_forward(
        qkv: FloatTensor<Self>,
        heads: usize,
        mask: Option<BoolTensor<Self>>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if !native(&[&qkv]) {
            return reference::attention_forward::<Self>(qkv, heads, mask);
        }
        let (out, lse) = attention::forward(qkv, heads, mask.as_ref(), true);
        (out, lse.expect("asked for"))
    }

    fn attention_backward(
        qkv: FloatTensor<Self>,
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        dout: FloatTensor<Self>,
        heads: usize,
        mask: Option<BoolTensor<Self>>,
    ) -> FloatTensor<Self> {
        if !native(&[&qkv, &out, &lse, &dout]) {
            return reference::attention_backward::<Self>(qkv, out, lse, dout, heads, mask);
        }
        attention::backward(qkv, out, lse, dout, heads, mask.as_ref())
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
        eps: f64,
    ) -> FloatTensor<Self> {
        Self::layer_norm_forward(x, gamma, beta, eps).0
    }

    fn layer_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let all: Vec<&FlexTensor> = [&x, &gamma].into_iter().chain(&beta).collect();
        if !native(&all) {
            return reference::layer_norm_forward::<Self>(x, gamma, beta, eps);
        }
        norm::layer_norm(x, gamma, beta, eps)
    }

    fn layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        has_beta: bool,
        wants: LinearWants,
    ) -> LayerNormGrads<Self> {
        if !native(&[&x, &gamma, &mean, &rstd, &dy]) {
            return reference::layer_norm_backward::<Self>(
                x, gamma, mean, rstd, dy, has_beta, wants,
            );
        }
        norm::layer_norm_backward(x, gamma, mean, rstd, dy, has_beta, wants)
    }

    fn fused_patchify(pixels: FloatTensor<Self>, p: usize) -> FloatTensor<Self> {
        if !native(&[&pixels]) {
            return reference::patchify::<Self>(pixels, p);
        }
        let x = dense(pixels);
        let [n, c, h, w] = <[usize; 4]>::try_from(dims(&x)).expect("images [N, C, H, W]");
        let (gh, gw) = (h / p, w / p);
        let src = slice(&x);
        let per = c * p * p;
        let mut out = buffer(n * gh * gw * per);
        // One task per image row of patches; each patch row of p pixels is one copy.
        out.par_chunks_mut(gw * per)
            .enumerate()
            .for_each(|(t, row)| {
                let (img, py) = (t / gh, t % gh);
                for px in 0..gw {
                    let patch = &mut row[px * per..(px + 1) * per];
                    for ch in 0..c {
                        for dy in 0..p {
                            let at = ((img * c + ch) * h + py * p + dy) * w + px * p;
                            let to = (ch * p + dy) * p;
                            patch[to..to + p].copy_from_slice(&src[at..at + p]);
                        }
                    }
                }
            });
        from_vec(out, &[n, gh * gw, per])
    }

    fn fused_residual(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        if !native(&[&a, &b]) {
            return <Self as burn::tensor::ops::FloatTensorOps<Self>>::float_add(a, b);
        }
        let mut a = owned(a);
        let b = dense(b);
        let n = a.layout().num_elements();
        a.try_storage_mut::<f32>().expect("owned")[..n]
            .par_chunks_mut(1 << 14)
            .zip(slice(&b).par_chunks(1 << 14))
            .for_each(|(x, y)| math::add_assign(x, y));
        a
    }

    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if !native(&[&x]) {
            return reference::softmax::<Self>(x);
        }
        norm::softmax(x)
    }

    fn softmax_backward(y: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        if !native(&[&y, &dy]) {
            return reference::softmax_backward::<Self>(y, dy);
        }
        norm::softmax_backward(y, dy)
    }

    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moments: Option<(FloatTensor<Self>, FloatTensor<Self>)>,
        step: AdamWStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let all: Vec<&FlexTensor> = [&param, &grad]
            .into_iter()
            .chain(moments.iter().flat_map(|(a, b)| [a, b]))
            .collect();
        if !native(&all) {
            return reference::adamw_step::<Self>(param, grad, moments, step);
        }
        adamw::step(param, grad, moments, step)
    }
}

/// `shape()` of a tensor as a vector.
pub(crate) fn dims(t: &FlexTensor) -> Vec<usize> {
    t.shape().to_vec()
}
