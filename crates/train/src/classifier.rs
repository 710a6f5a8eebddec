//! The cosine classifier: `logits = scale · norm(v) · norm(W)ᵀ`, with W from a classifier init
//! (frozen by default, as in every released config), the learnable CLIP logit scale for
//! training and a fixed 100 for evaluation. When W is narrower or wider than the video
//! embedding (BERT inits), a trainable projection maps the embedding to W's width.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
use t4v_clip::normalize;
use t4v_fused::FusedBackend;

/// The evaluation temperature of the reference.
pub const EVAL_SCALE: f64 = 100.0;

#[derive(Module, Debug)]
pub struct CosineClassifier<B: Backend> {
    /// `[C, D']`.
    pub weight: Param<Tensor<B, 2>>,
    /// D → D' when they differ.
    pub projection: Option<Linear<B>>,
    /// ln of the training temperature (CLIP's learned value, ln 100 in OpenAI checkpoints).
    pub logit_scale: Param<Tensor<B, 1>>,
}

impl<B: FusedBackend> CosineClassifier<B> {
    /// `weight` `[C, D']` for embeddings of width `dim`; `frozen`: W gets no gradient.
    pub fn new(weight: Tensor<B, 2>, dim: usize, frozen: bool, logit_scale: Tensor<B, 1>) -> Self {
        let width = weight.dims()[1];
        let device = weight.device();
        Self {
            weight: Param::from_tensor(weight).set_require_grad(!frozen),
            projection: (width != dim)
                .then(|| LinearConfig::new(dim, width).with_bias(false).init(&device)),
            logit_scale: Param::from_tensor(logit_scale),
        }
    }

    fn cosine(&self, v: Tensor<B, 2>) -> Tensor<B, 2> {
        let v = match &self.projection {
            Some(p) => t4v_clip::layers::apply(p, v),
            None => v,
        };
        normalize(v).matmul(normalize(self.weight.val()).transpose())
    }

    /// Training logits: `exp(logit_scale) · cos`.
    pub fn forward_train(&self, v: Tensor<B, 2>) -> Tensor<B, 2> {
        self.cosine(v) * self.logit_scale.val().exp().unsqueeze::<2>()
    }

    /// Evaluation logits: `100 · cos`.
    pub fn forward_eval(&self, v: Tensor<B, 2>) -> Tensor<B, 2> {
        self.cosine(v) * EVAL_SCALE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, TensorData};

    type AD = Autodiff<Flex>;

    #[test]
    fn frozen_weights_get_no_gradient_and_scales_differ() {
        let device = Default::default();
        let w = Tensor::<AD, 2>::random([5, 8], Distribution::Normal(0.0, 1.0), &device);
        let scale = Tensor::<AD, 1>::from_data(TensorData::new(vec![(50.0f32).ln()], [1]), &device);
        let c = CosineClassifier::new(w, 8, true, scale);
        let v =
            Tensor::<AD, 2>::random([3, 8], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let train = c.forward_train(v.clone());
        let eval = c.forward_eval(v.clone());
        let ratio: f32 = (eval.clone() / train.clone()).mean().into_scalar();
        assert!((ratio - 2.0).abs() < 1e-4);
        let max: f32 = eval.abs().max().into_scalar();
        assert!(max <= 100.0 + 1e-3);
        let g = train.sum().backward();
        assert!(c.weight.val().grad(&g).is_none());
        assert!(c.logit_scale.val().grad(&g).is_some());
        assert!(v.grad(&g).is_some());
        // A wider W (BERT-like) gets a projection.
        let wide = CosineClassifier::new(
            Tensor::<AD, 2>::zeros([5, 12], &device) + 1.0,
            8,
            false,
            Tensor::zeros([1], &device),
        );
        assert!(wide.projection.is_some());
        assert_eq!(
            wide.forward_eval(Tensor::<AD, 2>::ones([2, 8], &device))
                .dims(),
            [2, 5]
        );
    }
}
