//! The pre-LN transformer block shared by both towers (and by the temporal head of the video
//! classifier, which has the same block with another LayerNorm eps).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};
use t4v_fused::{Act, FusedBackend};

use crate::ClipError;
use crate::config::Activation;
use crate::weights::{Export, Weights};

/// A Linear from HF weights (`[out, in]`, transposed to burn's `[in, out]`).
pub fn linear<B: Backend>(
    w: &mut Weights,
    prefix: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    device: &B::Device,
) -> Result<Linear<B>, ClipError> {
    let weight = w.take(&format!("{prefix}.weight"), &[d_out, d_in])?;
    let weight = tensor2::<B>(transposed(&weight.data, d_out, d_in), [d_in, d_out], device);
    let bias = if bias {
        let b = w.take(&format!("{prefix}.bias"), &[d_out])?;
        Some(Param::from_tensor(tensor1::<B>(b.data, device)))
    } else {
        None
    };
    Ok(Linear {
        weight: Param::from_tensor(weight),
        bias,
    })
}

/// LayerNorm over the last dimension, run as one fused operation. Its fields are burn's
/// `LayerNorm`'s, so checkpoints (module records) read the same.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    pub gamma: Param<Tensor<B, 1>>,
    pub beta: Option<Param<Tensor<B, 1>>>,
    pub epsilon: f64,
}

impl<B: FusedBackend> LayerNorm<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        t4v_fused::layer_norm(
            x,
            self.gamma.val(),
            self.beta.as_ref().map(Param::val),
            self.epsilon,
        )
    }
}

pub fn layer_norm<B: Backend>(
    w: &mut Weights,
    prefix: &str,
    d: usize,
    eps: f64,
    device: &B::Device,
) -> Result<LayerNorm<B>, ClipError> {
    Ok(LayerNorm {
        gamma: Param::from_tensor(tensor1(
            w.take(&format!("{prefix}.weight"), &[d])?.data,
            device,
        )),
        beta: Some(Param::from_tensor(tensor1(
            w.take(&format!("{prefix}.bias"), &[d])?.data,
            device,
        ))),
        epsilon: eps,
    })
}

/// The inverse of [`linear`]: HF `[out, in]` weight and bias.
pub fn put_linear<B: Backend>(out: &mut Export, prefix: &str, l: &Linear<B>) {
    let [d_in, d_out] = l.weight.dims();
    out.put(
        &format!("{prefix}.weight"),
        l.weight.val().transpose(),
        &[d_out, d_in],
    );
    if let Some(b) = &l.bias {
        out.put(&format!("{prefix}.bias"), b.val(), &[d_out]);
    }
}

/// The inverse of [`layer_norm`].
pub fn put_layer_norm<B: Backend>(out: &mut Export, prefix: &str, ln: &LayerNorm<B>) {
    let d = ln.gamma.dims()[0];
    out.put(&format!("{prefix}.weight"), ln.gamma.val(), &[d]);
    let beta = ln.beta.as_ref().expect("CLIP LayerNorms have a bias");
    out.put(&format!("{prefix}.bias"), beta.val(), &[d]);
}

/// A row-major `rows × cols` matrix, transposed (weights are stored dense in burn's `[in, out]`
/// order: a transposed view would make every product read them across strides).
pub fn transposed(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for (i, row) in data.chunks_exact(cols).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[j * rows + i] = v;
        }
    }
    out
}

pub fn tensor1<B: Backend>(data: Vec<f32>, device: &B::Device) -> Tensor<B, 1> {
    let n = data.len();
    Tensor::from_data(TensorData::new(data, [n]), device)
}

pub fn tensor2<B: Backend>(data: Vec<f32>, shape: [usize; 2], device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// A Linear over the last dimension of `x` (all leading dimensions as one matrix: one large
/// GEMM), its bias and `act` fused.
pub fn apply_act<B: FusedBackend, const D: usize>(
    linear: &Linear<B>,
    x: Tensor<B, D>,
    act: Act,
) -> Tensor<B, D> {
    t4v_fused::linear(
        x,
        linear.weight.val(),
        linear.bias.as_ref().map(Param::val),
        act,
    )
}

/// A Linear over the last dimension of `x`.
pub fn apply<B: FusedBackend, const D: usize>(linear: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    apply_act(linear, x, Act::Identity)
}

impl From<Activation> for Act {
    fn from(a: Activation) -> Act {
        match a {
            Activation::QuickGelu => Act::QuickGelu,
            Activation::Gelu => Act::Gelu,
        }
    }
}

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub out_proj: Linear<B>,
    pub heads: usize,
}

impl<B: FusedBackend> Attention<B> {
    /// `x`: `[N, L, D]`; `mask`: `[L, L]`, true where attention is not allowed. The Q/K/V
    /// projection is one fused linear into a packed `[N, L, 3D]` buffer that the attention
    /// reads head by head.
    pub fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 2, Bool>>) -> Tensor<B, 3> {
        let projections = [&self.q_proj, &self.k_proj, &self.v_proj];
        let qkv = t4v_fused::linears(
            x,
            projections.iter().map(|p| p.weight.val()).collect(),
            projections
                .iter()
                .filter_map(|p| p.bias.as_ref().map(Param::val))
                .collect(),
            Act::Identity,
        );
        apply(&self.out_proj, t4v_fused::attention(qkv, self.heads, mask))
    }
}

#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    pub layer_norm1: LayerNorm<B>,
    pub self_attn: Attention<B>,
    pub layer_norm2: LayerNorm<B>,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    #[module(skip)]
    pub act: Activation,
}

impl<B: FusedBackend> EncoderLayer<B> {
    pub fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 2, Bool>>) -> Tensor<B, 3> {
        let a = self
            .self_attn
            .forward(self.layer_norm1.forward(x.clone()), mask);
        let x = t4v_fused::residual(x, a);
        let h = apply_act(
            &self.fc1,
            self.layer_norm2.forward(x.clone()),
            self.act.into(),
        );
        t4v_fused::residual(x, apply(&self.fc2, h))
    }
}

/// Encoder dimensions, shared by both towers' configs.
pub struct Dims {
    pub width: usize,
    pub mlp: usize,
    pub heads: usize,
    pub layers: usize,
    pub eps: f64,
    pub act: Activation,
}

pub fn encoder<B: Backend>(
    w: &mut Weights,
    prefix: &str,
    dims: &Dims,
    device: &B::Device,
) -> Result<Vec<EncoderLayer<B>>, ClipError> {
    (0..dims.layers)
        .map(|i| {
            let p = format!("{prefix}.encoder.layers.{i}");
            let d = dims.width;
            Ok(EncoderLayer {
                layer_norm1: layer_norm(w, &format!("{p}.layer_norm1"), d, dims.eps, device)?,
                self_attn: Attention {
                    q_proj: linear(w, &format!("{p}.self_attn.q_proj"), d, d, true, device)?,
                    k_proj: linear(w, &format!("{p}.self_attn.k_proj"), d, d, true, device)?,
                    v_proj: linear(w, &format!("{p}.self_attn.v_proj"), d, d, true, device)?,
                    out_proj: linear(w, &format!("{p}.self_attn.out_proj"), d, d, true, device)?,
                    heads: dims.heads,
                },
                layer_norm2: layer_norm(w, &format!("{p}.layer_norm2"), d, dims.eps, device)?,
                fc1: linear(w, &format!("{p}.mlp.fc1"), d, dims.mlp, true, device)?,
                fc2: linear(w, &format!("{p}.mlp.fc2"), dims.mlp, d, true, device)?,
                act: dims.act,
            })
        })
        .collect()
}

/// The inverse of [`encoder`].
pub fn put_encoder<B: Backend>(out: &mut Export, prefix: &str, layers: &[EncoderLayer<B>]) {
    for (i, l) in layers.iter().enumerate() {
        let p = format!("{prefix}.encoder.layers.{i}");
        put_layer_norm(out, &format!("{p}.layer_norm1"), &l.layer_norm1);
        let a = &l.self_attn;
        for (name, lin) in [
            ("q_proj", &a.q_proj),
            ("k_proj", &a.k_proj),
            ("v_proj", &a.v_proj),
            ("out_proj", &a.out_proj),
        ] {
            put_linear(out, &format!("{p}.self_attn.{name}"), lin);
        }
        put_layer_norm(out, &format!("{p}.layer_norm2"), &l.layer_norm2);
        put_linear(out, &format!("{p}.mlp.fc1"), &l.fc1);
        put_linear(out, &format!("{p}.mlp.fc2"), &l.fc2);
    }
}
