//! Gradient checkpointing (`model.checkpointing`: autodiff's balanced strategy, the fused
//! linears and LayerNorms recomputed in the backward pass) gives the loss and gradients of the
//! plain strategy, for the whole video classifier (CLIP frames, Transf head, cosine classifier).

use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use t4v_clip::ClipModel;
use t4v_fused::FusedAutodiffBackend;
use t4v_train::model::VideoClassifier;
use t4v_train::{ClipVideoEncoder, CosineClassifier};

/// The loss and every parameter's gradient after one backward pass.
fn loss_and_grads<B: FusedAutodiffBackend>() -> (f32, Vec<f32>) {
    let device = Default::default();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clip/fixtures/tiny-a");
    let clip = ClipModel::<B>::load(&dir, &device).unwrap().0;
    let d = clip.embed_dim();
    let scale = clip.logit_scale.val();
    let mut rng = t4v_core::SplitMix64::new(3);
    let w: Vec<f32> = (0..5 * d).map(|_| rng.normal() as f32).collect();
    let model = VideoClassifier::<B> {
        encoder: ClipVideoEncoder::new(clip, &t4v_train::temporal::Transf, 1),
        classifier: CosineClassifier::new(
            Tensor::from_data(TensorData::new(w, [5, d]), &device),
            d,
            false,
            scale,
        ),
    };
    let px: Vec<f32> = (0..3 * 2 * 3 * 32 * 32)
        .map(|_| rng.normal() as f32)
        .collect();
    let x = Tensor::<B, 5>::from_data(TensorData::new(px, [3, 2, 3, 32, 32]), &device);
    let y = t4v_train::fit::targets::<B>(&[0, 3, 4], &device);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(model.forward_train(x), y);
    let value: f32 = loss.clone().into_scalar().elem();
    let grads = loss.backward();
    struct Grads<'a, B: AutodiffBackend>(&'a B::Gradients, Vec<f32>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Grads<'_, B> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            if let Some(g) = p.val().grad(self.0) {
                self.1.extend(g.into_data().to_vec::<f32>().unwrap());
            }
        }
    }
    let mut v = Grads::<B>(&grads, Vec::new());
    model.visit(&mut v);
    (value, v.1)
}

#[test]
fn checkpointing_gives_the_same_loss_and_gradients() {
    let (l0, g0) = loss_and_grads::<Autodiff<Flex>>();
    let (l1, g1) = loss_and_grads::<Autodiff<Flex, BalancedCheckpointing>>();
    assert_eq!(l0, l1);
    assert_eq!(g0.len(), g1.len());
    assert!(g0.len() > 10_000, "{} gradient values", g0.len());
    let scale = g0.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = g0
        .iter()
        .zip(&g1)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-6 * scale, "max |Δ grad| {err:e} (max {scale:e})");
}
