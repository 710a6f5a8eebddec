//! The fused AdamW step against burn's `AdamW`: the same parameters after several steps, with
//! and without weight decay, on the native flex kernel and on the default body.

use burn::backend::{Autodiff, Flex};
use burn::nn::{Linear, LinearConfig};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{Tensor, TensorData};
use t4v_fused::{Mode, with_mode};

type AD = Autodiff<Flex>;

fn values(m: &Linear<AD>) -> Vec<f32> {
    let mut v: Vec<f32> = m.weight.val().into_data().to_vec().unwrap();
    v.extend(
        m.bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec::<f32>()
            .unwrap(),
    );
    v
}

fn train(mut opt: impl Optimizer<Linear<AD>, AD>, steps: usize) -> Vec<f32> {
    let device = Default::default();
    let mut m: Linear<AD> = LinearConfig::new(16, 8).init(&device);
    let w: Vec<f32> = (0..16 * 8)
        .map(|i| ((i * 29 % 31) as f32 - 15.0) / 20.0)
        .collect();
    m.weight = m
        .weight
        .map(|_| Tensor::from_data(TensorData::new(w.clone(), [16, 8]), &device));
    let b: Vec<f32> = (0..8).map(|i| i as f32 / 10.0 - 0.3).collect();
    m.bias = m
        .bias
        .map(|p| p.map(|_| Tensor::from_data(TensorData::new(b.clone(), [8]), &device)));
    let x = Tensor::<AD, 2>::from_data(
        TensorData::new(
            (0..4 * 16).map(|i| (i as f32 * 0.37).sin()).collect(),
            [4, 16],
        ),
        &device,
    );
    for s in 0..steps {
        let loss = m.forward(x.clone()).powi_scalar(2).sum() * (1.0 + s as f32);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        m = opt.step(1e-2, m, grads);
    }
    values(&m)
}

#[test]
fn fused_adamw_steps_like_burns() {
    for wd in [0.0f32, 0.2] {
        let want = train(
            AdamWConfig::new()
                .with_weight_decay(wd)
                .with_epsilon(1e-8)
                .init::<AD, Linear<AD>>(),
            4,
        );
        for mode in [Mode::Fused, Mode::Reference] {
            let got = with_mode(mode, || {
                let opt: OptimizerAdaptor<_, Linear<AD>, AD> =
                    OptimizerAdaptor::from(t4v_fused::optim::AdamW {
                        beta_1: 0.9,
                        beta_2: 0.999,
                        epsilon: 1e-8,
                        weight_decay: wd,
                    });
                train(opt, 4)
            });
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 * scale,
                    "wd {wd} {mode:?}: parameter {i}: {g} vs {w}"
                );
            }
        }
    }
}
