//! Data parallelism: two thread peers (burn's collective summing their gradients) end with the
//! parameters one device reaches at the same global batch, within 1e-5 — for the video
//! classifier (CLIP frames, Transf head, cosine classifier; two groups, gradient
//! accumulation), the probe, and the contrastive pretraining loss (rows gathered across peers,
//! the temperature counted once).

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor, TensorData};
use t4v_clip::ClipModel;
use t4v_core::spec::OptimSpec;
use t4v_train::fit::Fitter;
use t4v_train::model::{Grouped, Probe, VideoClassifier};
use t4v_train::parallel::{PeerCtx, Replicas};
use t4v_train::{ClipVideoEncoder, CosineClassifier, TemporalHead};

type AD = Autodiff<Flex>;

fn flat<M: Module<AD>>(m: &M) -> Vec<f32> {
    struct All(Vec<f32>);
    impl ModuleVisitor<AD> for All {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<AD, D>>) {
            self.0.extend(p.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let mut all = All(Vec::new());
    m.visit(&mut all);
    all.0
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        err <= 1e-5 * scale,
        "{what}: max |Δ| {err:e} (max |p| {scale})"
    );
}

fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = t4v_core::SplitMix64::new(seed);
    (0..n).map(|_| scale * rng.normal() as f32).collect()
}

/// A large Adam epsilon: the step is then about proportional to the gradient (Adam's
/// invariance to the gradient's scale would hide a gradient counted twice).
fn spec() -> OptimSpec {
    OptimSpec {
        lr: 1e-3,
        clip_ratio: 0.1,
        eps: 1.0,
        ..Default::default()
    }
}

/// Trains `model` for `steps` micro-batches on `peers` peers, the loss of each micro-batch
/// given by `loss`; returns the final parameters.
fn train<M, L>(
    peers: usize,
    model: M,
    accumulation: usize,
    steps: usize,
    batch: usize,
    loss: L,
) -> Vec<f32>
where
    M: burn::module::AutodiffModule<AD> + Grouped + 'static,
    L: Fn(&M, &PeerCtx<'_, AD>, usize) -> Tensor<AD, 1> + Sync,
{
    let device = Default::default();
    let mut r = Replicas::new(peers, 1, model, &device, |m, _| {
        Ok(Fitter::new(&spec(), accumulation, m))
    })
    .unwrap();
    assert_eq!(r.peers(), peers);
    for s in 0..steps {
        r.step(batch, 1.0, s + 1 == steps, &|m, ctx| Ok(loss(m, ctx, s)))
            .unwrap();
    }
    flat(&r.finish().unwrap())
}

#[test]
fn the_probe_on_two_peers_matches_one() {
    let device = Default::default();
    let (b, t, d, c) = (10, 4, 16, 5);
    let make = || Probe::<AD> {
        head: TemporalHead::new(&t4v_train::temporal::Transf, d, 3, &device),
        classifier: CosineClassifier::new(
            Tensor::from_data(TensorData::new(values(c * d, 1, 1.0), [c, d]), &device),
            d,
            false,
            Tensor::from_data(TensorData::new(vec![2.0f32], [1]), &device),
        ),
    };
    let x = values(4 * b * t * d, 2, 1.0);
    let labels: Vec<usize> = (0..4 * b).map(|i| (i * 7) % c).collect();
    let loss = |m: &Probe<AD>, ctx: &PeerCtx<'_, AD>, s: usize| {
        let rows = ctx.rows.clone();
        let at = s * b + rows.start;
        let xs = Tensor::<AD, 3>::from_data(
            TensorData::new(
                x[at * t * d..(at + rows.len()) * t * d].to_vec(),
                [rows.len(), t, d],
            ),
            ctx.device,
        );
        let y = t4v_train::fit::targets::<AD>(&labels[at..at + rows.len()], ctx.device);
        CrossEntropyLossConfig::new()
            .init(ctx.device)
            .forward(m.classifier.forward_train(m.embed(xs)), y)
            * ctx.weight()
    };
    let one = train(1, make(), 1, 4, b, loss);
    let two = train(2, make(), 1, 4, b, loss);
    assert_close(&two, &one, "probe, 4 steps");
    assert_ne!(one, flat(&make()), "the parameters moved");
}

fn tiny_clip(device: &burn::backend::flex::FlexDevice) -> ClipModel<AD> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clip/fixtures/tiny-a");
    ClipModel::load(&dir, device).unwrap().0
}

#[test]
fn the_video_classifier_on_two_peers_matches_one_with_accumulation() {
    let device = Default::default();
    let make = || {
        let clip = tiny_clip(&device);
        let d = clip.embed_dim();
        let scale = clip.logit_scale.val();
        VideoClassifier::<AD> {
            encoder: ClipVideoEncoder::new(clip, &t4v_train::temporal::Transf, 1),
            classifier: CosineClassifier::new(
                Tensor::from_data(TensorData::new(values(6 * d, 5, 1.0), [6, d]), &device),
                d,
                true,
                scale,
            ),
        }
    };
    // 5 clips of 2 frames of 32² per micro-batch (split 3 + 2), 2 micro-batches per step.
    let (b, frames, side) = (5, 2, 32);
    let per = frames * 3 * side * side;
    let pixels = values(4 * b * per, 6, 1.0);
    let labels: Vec<usize> = (0..4 * b).map(|i| i % 6).collect();
    let loss = |m: &VideoClassifier<AD>, ctx: &PeerCtx<'_, AD>, s: usize| {
        let rows = ctx.rows.clone();
        let at = s * b + rows.start;
        let x = Tensor::<AD, 5>::from_data(
            TensorData::new(
                pixels[at * per..(at + rows.len()) * per].to_vec(),
                [rows.len(), frames, 3, side, side],
            ),
            ctx.device,
        );
        let y = t4v_train::fit::targets::<AD>(&labels[at..at + rows.len()], ctx.device);
        CrossEntropyLossConfig::new()
            .init(ctx.device)
            .forward(m.forward_train(x), y)
            * ctx.weight()
    };
    let one = train(1, make(), 2, 4, b, loss);
    let two = train(2, make(), 2, 4, b, loss);
    assert_close(&two, &one, "video classifier, 2 steps of 2 micro-batches");
}

#[test]
fn contrastive_pretraining_on_two_peers_matches_one() {
    let device = Default::default();
    let (b, side) = (6, 32);
    let per = 3 * side * side;
    let pixels = values(2 * b * per, 8, 1.0);
    // Distinct captions of the fixture's 300-word vocabulary, pooled at the largest id.
    let ids: Vec<i64> = (0..2 * b)
        .flat_map(|i| {
            let mut row = vec![0, 10 + i as i64, 40 + (i as i64 % 3), 299];
            row.resize(16, 1);
            row
        })
        .collect();
    let loss = |m: &ClipModel<AD>, ctx: &PeerCtx<'_, AD>, s: usize| {
        let rows = ctx.rows.clone();
        let at = s * b + rows.start;
        let x = Tensor::<AD, 5>::from_data(
            TensorData::new(
                pixels[at * per..(at + rows.len()) * per].to_vec(),
                [rows.len(), 1, 3, side, side],
            ),
            ctx.device,
        );
        let t = Tensor::<AD, 2, Int>::from_data(
            TensorData::new(
                ids[at * 16..(at + rows.len()) * 16].to_vec(),
                [rows.len(), 16],
            ),
            ctx.device,
        );
        t4v_train::runs::contrastive_loss(m, ctx, x, t, 100f64.ln()).unwrap()
    };
    let one = train(1, tiny_clip(&device), 1, 2, b, loss);
    let two = train(2, tiny_clip(&device), 1, 2, b, loss);
    assert_close(&two, &one, "contrastive CLIP, 2 steps");
    assert_ne!(one, flat(&tiny_clip(&device)), "the parameters moved");
}
