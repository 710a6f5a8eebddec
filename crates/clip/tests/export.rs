//! Writing checkpoints: a model loaded from a checkpoint saved by `transformers` and written
//! back gives the same tensors under the same names and shapes, and a config that reads back.

use std::path::Path;

use burn::backend::Flex;
use t4v_clip::{ClipConfig, ClipModel, Weights};

type B = Flex;

#[test]
fn export_gives_back_the_transformers_checkpoint() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-a");
    let (model, config) = ClipModel::<B>::load(&dir, &Default::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    model.save(&config, out.path()).unwrap();

    let mut original = Weights::from_file(&dir.join("model.safetensors")).unwrap();
    let mut written = Weights::from_file(&out.path().join("model.safetensors")).unwrap();
    assert_eq!(original.names(), written.names());
    for name in original.names() {
        let shape = original.shape(&name).unwrap().to_vec();
        let a = original.take(&name, &shape).unwrap();
        let b = written.take(&name, &shape).unwrap();
        assert_eq!(a.data, b.data, "{name}");
    }
    let back = ClipConfig::from_file(&out.path().join("config.json")).unwrap();
    assert_eq!(back, config);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(json["model_type"], "clip");
    assert_eq!(json["vision_config"]["model_type"], "clip_vision_model");
}
