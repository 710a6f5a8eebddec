//! The CLIP video encoder on a tiny CLIP: frame features equal the image tower's, the mean head
//! averages them, and the parameter groups split backbone from head.

use std::path::Path;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use t4v_clip::ClipModel;
use t4v_core::VideoEncoder;
use t4v_train::encoder::ClipVideoEncoder;

type B = Flex;

#[test]
fn frames_through_clip_then_the_head() {
    let device = Default::default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clip/fixtures/tiny-b");
    let (clip, cfg) = ClipModel::<B>::load(&dir, &device).unwrap();
    let s = cfg.vision_config.image_size;
    let frames = Tensor::<B, 5>::random([2, 3, 3, s, s], Distribution::Normal(0.0, 1.0), &device);
    let per_image = clip.encode_image(frames.clone().reshape([6, 3, s, s]));

    let enc = ClipVideoEncoder::new(clip.clone(), &t4v_train::temporal::Mean, 0);
    assert_eq!(enc.embed_dim(), 24);
    let f = enc.frame_features(frames.clone());
    assert_eq!(f.dims(), [2, 3, 24]);
    let d: f32 = (f.reshape([6, 24]) - per_image.clone())
        .abs()
        .max()
        .into_scalar();
    assert!(d < 1e-5);
    let v = enc.forward(frames.clone());
    let want = per_image.reshape([2, 3, 24]).mean_dim(1).reshape([2, 24]);
    let d: f32 = (v - want).abs().max().into_scalar();
    assert!(d < 1e-5);
    assert!(enc.param_groups().head.is_empty());

    let transf = ClipVideoEncoder::new(clip, &t4v_train::temporal::Transf, 0);
    assert_eq!(transf.forward(frames).dims(), [2, 24]);
    let g = transf.param_groups();
    // vision: patch, class, position, 2 LNs, 4 per-layer LNs... — count tensors, not values.
    let head_tensors = 1 + 6 * 16;
    assert_eq!(g.head.len(), head_tensors);
    assert!(g.backbone.len() > 10);
    assert!(g.backbone.iter().all(|id| !g.head.contains(id)));
}
