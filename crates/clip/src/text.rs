//! The CLIP text transformer: token + positional embedding, causal pre-LN blocks, final LN,
//! pooling at the end-of-text token.

use burn::module::{Module, Param};
use burn::nn::Embedding;
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};

use crate::ClipError;
use crate::config::TextConfig;
use crate::layers::{
    Dims, EncoderLayer, LayerNorm, encoder, layer_norm, put_encoder, put_layer_norm, tensor2,
};
use crate::weights::{Export, Weights};
use t4v_fused::FusedBackend;

#[derive(Module, Debug)]
pub struct TextTransformer<B: Backend> {
    pub token_embedding: Embedding<B>,
    pub position_embedding: Param<Tensor<B, 2>>,
    pub layers: Vec<EncoderLayer<B>>,
    pub final_layer_norm: LayerNorm<B>,
    #[module(skip)]
    pub eos_token_id: i64,
}

/// Outputs of the text tower.
pub struct TextOutput<B: Backend> {
    /// `[N, L, width]`, after the final LN.
    pub last_hidden_state: Tensor<B, 3>,
    /// `[N, width]`: the hidden state at the end-of-text token.
    pub pooled: Tensor<B, 2>,
}

impl<B: Backend> TextTransformer<B> {
    pub(crate) fn load(
        w: &mut Weights,
        c: &TextConfig,
        device: &B::Device,
    ) -> Result<Self, ClipError> {
        let d = c.hidden_size;
        let tok = w.take(
            "text_model.embeddings.token_embedding.weight",
            &[c.vocab_size, d],
        )?;
        let pos = w.take(
            "text_model.embeddings.position_embedding.weight",
            &[c.max_position_embeddings, d],
        )?;
        let dims = Dims {
            width: d,
            mlp: c.intermediate_size,
            heads: c.num_attention_heads,
            layers: c.num_hidden_layers,
            eps: c.layer_norm_eps,
            act: c.hidden_act,
        };
        Ok(Self {
            token_embedding: Embedding {
                weight: Param::from_tensor(tensor2(tok.data, [c.vocab_size, d], device)),
            },
            position_embedding: Param::from_tensor(tensor2(
                pos.data,
                [c.max_position_embeddings, d],
                device,
            )),
            layers: encoder(w, "text_model", &dims, device)?,
            final_layer_norm: layer_norm(
                w,
                "text_model.final_layer_norm",
                d,
                c.layer_norm_eps,
                device,
            )?,
            eos_token_id: c.eos_token_id,
        })
    }

    /// The inverse of `load`: the tower's tensors under their HF names.
    pub fn export(&self, out: &mut Export) {
        let tok = self.token_embedding.weight.dims();
        out.put(
            "text_model.embeddings.token_embedding.weight",
            self.token_embedding.weight.val(),
            &tok,
        );
        let pos = self.position_embedding.dims();
        out.put(
            "text_model.embeddings.position_embedding.weight",
            self.position_embedding.val(),
            &pos,
        );
        put_encoder(out, "text_model", &self.layers);
        put_layer_norm(out, "text_model.final_layer_norm", &self.final_layer_norm);
    }

    /// Context length (rows of the positional embedding).
    pub fn context_length(&self) -> usize {
        self.position_embedding.dims()[0]
    }

    /// Where each sequence is pooled: the first end-of-text id, or (legacy `eos_token_id == 2`)
    /// the largest id, as `transformers` does.
    pub fn pool_positions(&self, ids: &[i64], len: usize) -> Vec<usize> {
        ids.chunks(len)
            .map(|row| {
                if self.eos_token_id == 2 {
                    let max = row.iter().copied().max().unwrap_or(0);
                    row.iter().position(|&t| t == max).unwrap_or(0)
                } else {
                    row.iter()
                        .position(|&t| t == self.eos_token_id)
                        .unwrap_or(len - 1)
                }
            })
            .collect()
    }
}

impl<B: FusedBackend> TextTransformer<B> {
    /// `ids`: `[N, L]` token ids, L ≤ the context length.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> TextOutput<B> {
        let [n, l] = ids.dims();
        let device = ids.device();
        let host: Vec<i64> = ids
            .clone()
            .into_data()
            .convert::<i64>()
            .to_vec()
            .expect("token ids read back");
        let pos = self
            .position_embedding
            .val()
            .narrow(0, 0, l)
            .unsqueeze::<3>();
        let mut x = self.token_embedding.forward(ids) + pos;
        let causal: Vec<bool> = (0..l * l).map(|i| i % l > i / l).collect();
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(causal, [l, l]), &device);
        for layer in &self.layers {
            x = layer.forward(x, Some(mask.clone()));
        }
        let x = self.final_layer_norm.forward(x);
        let width = x.dims()[2];
        let rows: Vec<i64> = self
            .pool_positions(&host, l)
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i * l + p) as i64)
            .collect();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [n]), &device);
        let pooled = x.clone().reshape([n * l, width]).select(0, index);
        TextOutput {
            last_hidden_state: x,
            pooled,
        }
    }
}
