//! Every fused operation, forward and gradients, against the composition of tensor ops it
//! replaces, differentiated op by op (`Mode::Decomposed`): the native flex kernels
//! (`Mode::Fused`) and the default bodies that CUDA runs (`Mode::Reference`), on random inputs
//! of several shapes (odd lengths, one head and many, with and without mask and bias).
//!
//! Tolerance: 1e-5 of the largest magnitude of the reference tensor.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Bool, Tensor, TensorData};
use t4v_fused::{Act, Mode, with_mode};

type AD = Autodiff<Flex>;

const TOL: f32 = 1e-5;

struct Rng(u64);

impl Rng {
    fn normal(&mut self) -> f32 {
        // Box–Muller on a 64-bit LCG: enough for test data.
        let mut u = || {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (a, b) = (u(), u());
        ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
    }

    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| scale * self.normal()).collect()
    }
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let (mut err, mut at) = (0f32, 0);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x.is_finite(), "{what}: element {i} is {x}");
        if (x - y).abs() > err {
            err = (x - y).abs();
            at = i;
        }
    }
    assert!(
        err <= TOL * scale,
        "{what}: max |Δ| {err:e} at {at} ({} vs {}) against max |ref| {scale:e}",
        a[at],
        b[at]
    );
}

fn values<const D: usize>(t: Tensor<AD, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

/// The output and the gradients of `Σ out ⊙ r` with respect to every input, in `mode`.
fn run<const D: usize, const O: usize>(
    mode: Mode,
    inputs: &[(Vec<f32>, [usize; D])],
    r: &[f32],
    f: &dyn Fn(Vec<Tensor<AD, D>>) -> Tensor<AD, O>,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    with_mode(mode, || {
        let device = Default::default();
        let ts: Vec<Tensor<AD, D>> = inputs
            .iter()
            .map(|(v, s)| Tensor::from_data(TensorData::new(v.clone(), *s), &device).require_grad())
            .collect();
        let out = f(ts.clone());
        let dims = out.dims();
        let rt = Tensor::<AD, O>::from_data(TensorData::new(r.to_vec(), dims), &device);
        let grads = (out.clone() * rt).sum().backward();
        let g = ts
            .iter()
            .map(|t| {
                t.grad(&grads)
                    .map(|g| g.into_data().convert::<f32>().to_vec().unwrap())
                    .unwrap_or_default()
            })
            .collect();
        (values(out), g)
    })
}

/// Runs `f` in the three modes and compares the fused and reference ones with the
/// decomposition.
fn check<const D: usize, const O: usize>(
    what: &str,
    inputs: &[(Vec<f32>, [usize; D])],
    out_len: usize,
    f: &dyn Fn(Vec<Tensor<AD, D>>) -> Tensor<AD, O>,
    rng: &mut Rng,
) {
    let r = rng.vec(out_len, 1.0);
    let (want, want_g) = run(Mode::Decomposed, inputs, &r, f);
    for mode in [Mode::Fused, Mode::Reference] {
        let (got, got_g) = run(mode, inputs, &r, f);
        close(&got, &want, &format!("{what} ({mode:?}) forward"));
        for (i, (g, w)) in got_g.iter().zip(&want_g).enumerate() {
            close(g, w, &format!("{what} ({mode:?}) gradient of input {i}"));
        }
    }
}

#[test]
fn linear_with_and_without_bias_and_activation() {
    let mut rng = Rng(1);
    for &(m, k, n) in &[(1, 1, 1), (7, 5, 3), (33, 64, 96), (130, 48, 257)] {
        for act in [Act::Identity, Act::QuickGelu, Act::Gelu] {
            for bias in [true, false] {
                let mut inputs = vec![(rng.vec(m * k, 1.0), [m, k]), (rng.vec(k * n, 0.3), [k, n])];
                if bias {
                    inputs.push((rng.vec(n, 0.5), [1, n]));
                }
                let f = move |t: Vec<Tensor<AD, 2>>| {
                    let b = t.get(2).map(|b| b.clone().reshape([n]));
                    t4v_fused::linear(t[0].clone(), t[1].clone(), b, act)
                };
                check(
                    &format!("linear {m}×{k}·{k}×{n} {act:?} bias={bias}"),
                    &inputs,
                    m * n,
                    &f,
                    &mut rng,
                );
            }
        }
    }
}

#[test]
fn linear_of_a_transposed_weight_and_a_3d_input() {
    // Loaded weights are transposed views ([out, in] read as [in, out]).
    let mut rng = Rng(2);
    let (b, l, k, n) = (3, 5, 16, 24);
    let inputs = vec![
        (rng.vec(b * l * k, 1.0), [b * l, k]),
        (rng.vec(n * k, 0.3), [n, k]),
        (rng.vec(n, 0.1), [1, n]),
    ];
    let f = move |t: Vec<Tensor<AD, 2>>| {
        let x: Tensor<AD, 3> = t[0].clone().reshape([b, l, k]);
        let y = t4v_fused::linear(
            x,
            t[1].clone().transpose(),
            Some(t[2].clone().reshape([n])),
            Act::QuickGelu,
        );
        y.reshape([b * l, n])
    };
    check(
        "linear, transposed weight",
        &inputs,
        b * l * n,
        &f,
        &mut rng,
    );
}

#[test]
fn qkv_projection_of_three_weights() {
    let mut rng = Rng(3);
    for &(m, d) in &[(9, 8), (65, 64)] {
        for bias in [true, false] {
            let mut inputs = vec![(rng.vec(m * d, 1.0), [m, d])];
            for _ in 0..3 {
                inputs.push((rng.vec(d * d, 0.2), [d, d]));
            }
            if bias {
                for _ in 0..3 {
                    inputs.push((rng.vec(d, 0.2), [1, d]));
                }
            }
            let f = move |t: Vec<Tensor<AD, 2>>| {
                let ws = t[1..4].to_vec();
                let bs = t[4..].iter().map(|b| b.clone().reshape([d])).collect();
                t4v_fused::linears(t[0].clone(), ws, bs, Act::Identity)
            };
            check(
                &format!("qkv {m}×{d} bias={bias}"),
                &inputs,
                m * 3 * d,
                &f,
                &mut rng,
            );
        }
    }
}

fn causal(l: usize) -> Vec<bool> {
    (0..l * l).map(|i| i % l > i / l).collect()
}

#[test]
fn attention_with_and_without_mask() {
    let mut rng = Rng(4);
    for &(n, l, heads, hd) in &[
        (1, 1, 1, 4),
        (2, 7, 1, 16),
        (3, 17, 4, 8),
        (2, 50, 12, 8),
        (1, 77, 8, 16),
    ] {
        let d = heads * hd;
        for masked in [false, true] {
            let mask = masked.then(|| {
                if l > 3 && l % 2 == 1 {
                    // A random mask that keeps the diagonal.
                    (0..l * l)
                        .map(|i| i % l != i / l && rng.normal() > 0.3)
                        .collect()
                } else {
                    causal(l)
                }
            });
            let inputs = vec![(rng.vec(n * l * 3 * d, 1.5), [n, l, 3 * d])];
            let f = move |t: Vec<Tensor<AD, 3>>| {
                let m = mask.clone().map(|m| {
                    Tensor::<AD, 2, Bool>::from_data(TensorData::new(m, [l, l]), &t[0].device())
                });
                t4v_fused::attention(t[0].clone(), heads, m)
            };
            check(
                &format!("attention n={n} l={l} heads={heads} hd={hd} mask={masked}"),
                &inputs,
                n * l * d,
                &f,
                &mut rng,
            );
        }
    }
}

#[test]
fn layer_norm_with_and_without_beta() {
    let mut rng = Rng(5);
    for &(m, d) in &[(1, 1), (3, 7), (65, 64), (401, 768)] {
        for (eps, beta) in [(1e-5, true), (1e-12, true), (1e-5, false)] {
            let mut x = rng.vec(m * d, 2.0);
            for v in x.iter_mut().take(d) {
                *v += 3.0; // an offset row: the variance is of the centred values
            }
            let mut inputs = vec![(x, [m, d]), (rng.vec(d, 1.0), [1, d])];
            if beta {
                inputs.push((rng.vec(d, 1.0), [1, d]));
            }
            let f = move |t: Vec<Tensor<AD, 2>>| {
                let b = t.get(2).map(|b| b.clone().reshape([d]));
                t4v_fused::layer_norm(t[0].clone(), t[1].clone().reshape([d]), b, eps)
            };
            check(
                &format!("layer_norm {m}×{d} eps={eps} beta={beta}"),
                &inputs,
                m * d,
                &f,
                &mut rng,
            );
        }
    }
}

#[test]
fn softmax_of_rows() {
    let mut rng = Rng(6);
    for &(m, d) in &[(1, 1), (5, 3), (64, 77), (9, 1000)] {
        let inputs = vec![(rng.vec(m * d, 4.0), [m, d])];
        let f = |t: Vec<Tensor<AD, 2>>| t4v_fused::softmax(t[0].clone());
        check(&format!("softmax {m}×{d}"), &inputs, m * d, &f, &mut rng);
    }
}

#[test]
fn patches_of_images() {
    let mut rng = Rng(9);
    for &(n, c, side, p) in &[(1, 1, 4, 2), (2, 3, 32, 4), (3, 3, 224, 32)] {
        let inputs = vec![(rng.vec(n * c * side * side, 1.0), [n, c, side, side])];
        let g = side / p;
        let f = move |t: Vec<Tensor<AD, 4>>| t4v_fused::patchify(t[0].clone(), p);
        check(
            &format!("patchify {n}×{c}×{side}² p={p}"),
            &inputs,
            n * g * g * c * p * p,
            &f,
            &mut rng,
        );
    }
}

#[test]
fn residual_sum() {
    let mut rng = Rng(8);
    for &(m, d) in &[(1, 1), (7, 5), (300, 768)] {
        let inputs = vec![(rng.vec(m * d, 1.0), [m, d]), (rng.vec(m * d, 1.0), [m, d])];
        let f = |t: Vec<Tensor<AD, 2>>| t4v_fused::residual(t[0].clone(), t[1].clone());
        check(&format!("residual {m}×{d}"), &inputs, m * d, &f, &mut rng);
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut rng = Rng(7);
    let (n, l, heads, d) = (4, 33, 4, 64);
    let x = rng.vec(n * l * 3 * d, 1.0);
    let r = rng.vec(n * l * d, 1.0);
    let f = |t: Vec<Tensor<AD, 3>>| {
        let y = t4v_fused::attention(t[0].clone(), heads, None);
        let g = Tensor::ones([d], &y.device());
        let y = t4v_fused::layer_norm(y, g, None, 1e-5);
        // A product large enough to be split over the threads.
        let w = Tensor::ones([d, 4 * d], &y.device()) / (d as f32);
        let z = t4v_fused::linear(y.clone(), w, None, Act::QuickGelu);
        let back = Tensor::ones([4 * d, d], &y.device()) / (4.0 * d as f32);
        t4v_fused::residual(y, t4v_fused::linear(z, back, None, Act::Identity))
    };
    let inputs = [(x, [n, l, 3 * d])];
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let a = one.install(|| run(Mode::Fused, &inputs, &r, &f));
    let b = three.install(|| run(Mode::Fused, &inputs, &r, &f));
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
}
