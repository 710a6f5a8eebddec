//! The Transf head against its PyTorch reference (`tests/data/make_temporal_fixture.py`), and
//! the shapes and initialisation of the reference configuration.

use std::path::Path;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;
use t4v_clip::Weights;
use t4v_train::temporal::{TemporalConfig, TemporalHead, TransfHead};

type B = Flex;

fn data() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn tensor<const D: usize>(st: &SafeTensors, name: &str) -> Tensor<B, D> {
    let v = st.tensor(name).unwrap();
    let data: Vec<f32> = v
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Tensor::from_data(
        TensorData::new(data, v.shape().to_vec()),
        &Default::default(),
    )
}

#[test]
fn transf_matches_pytorch() {
    let cfg = TemporalConfig {
        width: 64,
        layers: 2,
        heads: 4,
        mlp_ratio: 4,
        eps: 1e-12,
    };
    let w = Weights::from_file(&data().join("transf_head.safetensors")).unwrap();
    let head = TransfHead::<B>::from_weights(&cfg, w, &Default::default()).unwrap();
    let bytes = std::fs::read(data().join("transf_head_io.safetensors")).unwrap();
    let io = SafeTensors::deserialize(&bytes).unwrap();
    let y = head.forward(tensor::<3>(&io, "x"));
    let d: f32 = (y - tensor::<2>(&io, "y")).abs().max().into_scalar();
    assert!(d < 1e-4, "max |diff| {d}");
}

#[test]
fn reference_configuration_and_mean_head() {
    let device = Default::default();
    let cfg = TemporalConfig::reference(512);
    assert_eq!((cfg.layers, cfg.heads, cfg.mlp_ratio), (6, 8, 4));
    let head = TemporalHead::<B>::new(&t4v_train::temporal::Transf, 512, 0, &device);
    let x = Tensor::<B, 3>::random(
        [2, 8, 512],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    assert_eq!(head.forward(x.clone()).dims(), [2, 512]);
    // ≈ 12·D² per block: 18.9 M parameters for D = 512, as REFERENCE.md counts.
    let params = burn::module::Module::num_params(&head);
    assert!((18_800_000..19_100_000).contains(&params), "{params}");
    let mean = TemporalHead::<B>::new(&t4v_train::temporal::Mean, 512, 0, &device);
    let m: f32 = (mean.forward(x.clone()) - x.mean_dim(1).reshape([2, 512]))
        .abs()
        .max()
        .into_scalar();
    assert_eq!(m, 0.0);
    let t = head.transf.as_ref().unwrap();
    let w: Vec<f32> = t.layers[0].fc1.weight.val().into_data().to_vec().unwrap();
    let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
    assert!((std - 0.02).abs() < 0.001, "fc1 init std {std}");
}
