//! The BERT encoder (post-LN transformer) for BERT, MiniLM and DistilBERT checkpoints in Hugging
//! Face layout. Checkpoint names differ between the two families; [`Names`] maps them in one
//! place onto one model.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use serde::Deserialize;
use t4v_clip::layers::{Attention, LayerNorm, apply, apply_act, layer_norm, linear, tensor2};
use t4v_clip::{ClipError, Weights};
use t4v_fused::{Act, FusedBackend};

/// The fields of `config.json` the encoder needs, under either family's names.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    /// `bert` (BERT, MiniLM) or `distilbert`.
    pub model_type: String,
    pub vocab_size: usize,
    #[serde(alias = "dim")]
    pub hidden_size: usize,
    #[serde(alias = "n_layers")]
    pub num_hidden_layers: usize,
    #[serde(alias = "n_heads")]
    pub num_attention_heads: usize,
    #[serde(alias = "hidden_dim")]
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    /// BERT only; DistilBERT has no token types.
    #[serde(default)]
    pub type_vocab_size: usize,
    /// DistilBERT fixes it at 1e-12 and does not store it.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(alias = "activation", default = "default_act")]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-12
}

fn default_act() -> String {
    "gelu".into()
}

/// Checkpoint names of one family.
struct Names {
    layers: &'static str,
    query: &'static str,
    key: &'static str,
    value: &'static str,
    attn_out: &'static str,
    attn_norm: &'static str,
    ffn_in: &'static str,
    ffn_out: &'static str,
    ffn_norm: &'static str,
}

const BERT: Names = Names {
    layers: "encoder.layer",
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attn_out: "attention.output.dense",
    attn_norm: "attention.output.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    ffn_norm: "output.LayerNorm",
};

const DISTILBERT: Names = Names {
    layers: "transformer.layer",
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attn_out: "attention.out_lin",
    attn_norm: "sa_layer_norm",
    ffn_in: "ffn.lin1",
    ffn_out: "ffn.lin2",
    ffn_norm: "output_layer_norm",
};

/// Name prefixes of heads that checkpoints carry beside the encoder.
const HEADS: &[&str] = &[
    "pooler.",
    "cls.",
    "vocab_transform.",
    "vocab_layer_norm.",
    "vocab_projector.",
    "lm_head.",
];

#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    pub attention: Attention<B>,
    pub attention_norm: LayerNorm<B>,
    pub ffn_in: Linear<B>,
    pub ffn_out: Linear<B>,
    pub ffn_norm: LayerNorm<B>,
}

impl<B: FusedBackend> BertLayer<B> {
    /// Post-LN: `LN(x + attn(x))`, then `LN(h + FFN(h))` with the exact (erf) GELU.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.attention_norm.forward(t4v_fused::residual(
            x.clone(),
            self.attention.forward(x, None),
        ));
        let f = apply(&self.ffn_out, apply_act(&self.ffn_in, h.clone(), Act::Gelu));
        self.ffn_norm.forward(t4v_fused::residual(h, f))
    }
}

#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    pub word_embeddings: Param<Tensor<B, 2>>,
    pub position_embeddings: Param<Tensor<B, 2>>,
    /// Row 0 of BERT's token-type table (every sentence is segment A); absent for DistilBERT.
    pub token_type: Option<Param<Tensor<B, 2>>>,
    pub embeddings_norm: LayerNorm<B>,
    pub layers: Vec<BertLayer<B>>,
}

impl<B: Backend> BertModel<B> {
    pub fn from_weights(
        c: &BertConfig,
        mut w: Weights,
        device: &B::Device,
    ) -> Result<Self, ClipError> {
        let path = w.path().to_path_buf();
        let bad = |message: String| ClipError::Config {
            path: path.clone(),
            message,
        };
        let names = match c.model_type.as_str() {
            "bert" => &BERT,
            "distilbert" => &DISTILBERT,
            other => {
                return Err(bad(format!(
                    "model_type `{other}` is not a BERT-family encoder (bert, distilbert)"
                )));
            }
        };
        if c.hidden_act != "gelu" {
            return Err(bad(format!(
                "hidden_act `{}`: only the exact GELU is implemented",
                c.hidden_act
            )));
        }
        let d = c.hidden_size;
        if c.num_attention_heads == 0 || !d.is_multiple_of(c.num_attention_heads) {
            return Err(bad(format!(
                "{} heads do not divide width {d}",
                c.num_attention_heads
            )));
        }
        // Some checkpoints prefix every name with `bert.` / `distilbert.`.
        let prefix = if w.shape("embeddings.word_embeddings.weight").is_some() {
            String::new()
        } else {
            format!("{}.", c.model_type)
        };
        let p = |s: &str| format!("{prefix}{s}");
        let word = w.take(&p("embeddings.word_embeddings.weight"), &[c.vocab_size, d])?;
        let pos = w.take(
            &p("embeddings.position_embeddings.weight"),
            &[c.max_position_embeddings, d],
        )?;
        let token_type = if names.layers == BERT.layers {
            let t = w.take(
                &p("embeddings.token_type_embeddings.weight"),
                &[c.type_vocab_size, d],
            )?;
            Some(Param::from_tensor(tensor2(
                t.data[..d].to_vec(),
                [1, d],
                device,
            )))
        } else {
            None
        };
        let eps = c.layer_norm_eps;
        let embeddings_norm = layer_norm(&mut w, &p("embeddings.LayerNorm"), d, eps, device)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = p(&format!("{}.{i}", names.layers));
            let n = |s: &str| format!("{l}.{s}");
            let m = c.intermediate_size;
            layers.push(BertLayer {
                attention: Attention {
                    q_proj: linear(&mut w, &n(names.query), d, d, true, device)?,
                    k_proj: linear(&mut w, &n(names.key), d, d, true, device)?,
                    v_proj: linear(&mut w, &n(names.value), d, d, true, device)?,
                    out_proj: linear(&mut w, &n(names.attn_out), d, d, true, device)?,
                    heads: c.num_attention_heads,
                },
                attention_norm: layer_norm(&mut w, &n(names.attn_norm), d, eps, device)?,
                ffn_in: linear(&mut w, &n(names.ffn_in), d, m, true, device)?,
                ffn_out: linear(&mut w, &n(names.ffn_out), m, d, true, device)?,
                ffn_norm: layer_norm(&mut w, &n(names.ffn_norm), d, eps, device)?,
            });
        }
        // Task heads saved with the encoder (BERT's pooler and pre-training heads, DistilBERT's
        // masked-LM head) are not used by mean pooling.
        for name in w.names() {
            let bare = name.strip_prefix(&prefix).unwrap_or(&name);
            if HEADS.iter().any(|h| bare.starts_with(h)) {
                let shape = w.shape(&name).map(<[usize]>::to_vec).unwrap_or_default();
                w.take(&name, &shape)?;
            }
        }
        w.finish()?;
        Ok(Self {
            word_embeddings: Param::from_tensor(tensor2(word.data, [c.vocab_size, d], device)),
            position_embeddings: Param::from_tensor(tensor2(
                pos.data,
                [c.max_position_embeddings, d],
                device,
            )),
            token_type,
            embeddings_norm,
            layers,
        })
    }

    pub fn width(&self) -> usize {
        self.word_embeddings.dims()[1]
    }
}

impl<B: FusedBackend> BertModel<B> {
    /// Token ids `[N, L]` (no padding: every row a whole sentence) → hidden states `[N, L, D]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [n, l] = ids.dims();
        let d = self.width();
        let device = ids.device();
        let tokens = self
            .word_embeddings
            .val()
            .select(0, ids.reshape([n * l]))
            .reshape([n, l, d]);
        let positions = Tensor::<B, 1, Int>::from_data(
            TensorData::new((0..l as i64).collect::<Vec<_>>(), [l]),
            &device,
        );
        let mut x = tokens
            + self
                .position_embeddings
                .val()
                .select(0, positions)
                .unsqueeze();
        if let Some(t) = &self.token_type {
            x = x + t.val().unsqueeze();
        }
        let mut h = self.embeddings_norm.forward(x);
        for layer in &self.layers {
            h = layer.forward(h);
        }
        h
    }

    /// Mean of the hidden states over the tokens (sentence-transformers' mean pooling; with no
    /// padding every token counts).
    pub fn mean_pooled(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [n, _] = ids.dims();
        let d = self.width();
        self.forward(ids).mean_dim(1).reshape([n, d])
    }
}
