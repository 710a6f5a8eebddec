//! Fine-tuning set-up: under autodiff the vision tower and logit scale get gradients, the frozen
//! text tower none.

use std::path::Path;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, Tensor};
use t4v_clip::{ClipModel, ids_tensor};

type AD = Autodiff<Flex>;

#[test]
fn the_frozen_text_tower_gets_no_gradient() {
    let device = Default::default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-b");
    let (model, config) = ClipModel::<AD>::load(&dir, &device).unwrap();
    let model = model.freeze_text();
    let s = config.vision_config.image_size;
    let pixels = Tensor::<AD, 4>::random([2, 3, s, s], Distribution::Normal(0.0, 1.0), &device);
    let ids = ids_tensor::<AD>(
        &[vec![498, 10, 20, 499, 499], vec![498, 7, 499, 499, 499]],
        &device,
    );
    let logits = model.logits_per_image(model.encode_image(pixels), model.encode_text(ids));
    let loss = logits.clone().powf_scalar(2.0).mean();
    let grads = loss.backward();
    let g = model
        .vision
        .patch_embedding
        .val()
        .grad(&grads)
        .expect("vision gradient");
    assert!(g.abs().sum().into_scalar() > 0.0);
    assert!(model.visual_projection.weight.val().grad(&grads).is_some());
    assert!(model.logit_scale.val().grad(&grads).is_some());
    assert!(
        model
            .text
            .token_embedding
            .weight
            .val()
            .grad(&grads)
            .is_none()
    );
    assert!(model.text.layers[0].fc1.weight.val().grad(&grads).is_none());
    assert!(model.text_projection.weight.val().grad(&grads).is_none());
}
