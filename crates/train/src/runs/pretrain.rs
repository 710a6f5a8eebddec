//! `pretrain`: a small CLIP trained from scratch, contrastively (CLIP's symmetric InfoNCE),
//! on the caption/video pairs of a dataset whose class names are captions (the synthetic world).
//! Same model code as the released checkpoints, a word-level vocabulary built from the
//! captions; the artefact is a model folder in Hugging Face layout (`config.json`,
//! `model.safetensors`, `tokenizer.json`) that other runs consume as
//! `needs: #{ pretrained: … }`.
//!
//! A video is embedded as the mean of its frames' image embeddings (the `mean` head), so the
//! image tower learns what single frames show: shape, colour, and where and how large the shape
//! is — which separates the motion axes (horizontal, vertical, scale) but not their direction,
//! since a mean over frames is blind to their order. Direction is left to the temporal heads
//! trained downstream.
//!
//! Checkpointed (`checkpoint/last`: model, optimiser, loop state) at every epoch end and every
//! `checkpoint_every` steps; a re-attempt continues from it on the same batches and captions,
//! which are drawn from the seed and the epoch alone.

use std::sync::Arc;
use t4v_fused::{FusedAutodiffBackend, FusedBackend};

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor, TensorData};
use t4v_clip::{Activation, ClipConfig, ClipModel, ClipTokenizer, TextConfig, VisionConfig};
use t4v_core::{
    Family, Job, ParamDef, ParamType, PluginInfo, Registry, Reporter, RunError, RunKind,
};
use t4v_video::Video;
use t4v_video::loader::{ClipSource, epoch_from};

use super::{
    Body, eval_loader, eval_split, fail, on_backend, open_dataset, score_single_view, to_vec,
};
use crate::classifier::CosineClassifier;
use crate::fit::{self, Fitter, LoopState};
use crate::history::History;
use crate::metrics::accuracy;
use crate::parallel::{PeerCtx, Replicas, peer_threads};
use crate::schedule::WarmupCosine;

pub struct PretrainRun;

/// How a class caption is phrased in a pretraining pair, drawn per sample: the prompt
/// templates of the downstream runs (`a video of {}.`) are among them, so their words are in
/// the vocabulary.
pub const CAPTION_TEMPLATES: &[&str] = &[
    "{}",
    "{}.",
    "a video of {}.",
    "a clip of {}.",
    "footage of {}.",
    "a short video of {}.",
];

static PRETRAIN: PluginInfo = PluginInfo {
    name: "pretrain",
    summary: "contrastive pretraining of a small CLIP from scratch on caption/video pairs (class names as captions); artefact `model`: an HF-layout folder",
    params: &[
        ParamDef {
            name: "width",
            ty: ParamType::Int,
            default: "64",
            doc: "hidden width of both towers",
        },
        ParamDef {
            name: "layers",
            ty: ParamType::Int,
            default: "2",
            doc: "transformer blocks of each tower",
        },
        ParamDef {
            name: "heads",
            ty: ParamType::Int,
            default: "4",
            doc: "attention heads of each tower",
        },
        ParamDef {
            name: "patch",
            ty: ParamType::Int,
            default: "4",
            doc: "patch side in pixels (model.input_size is the image side)",
        },
        ParamDef {
            name: "embed_dim",
            ty: ParamType::Int,
            default: "64",
            doc: "width of the joint embedding space (CLIP's projection_dim)",
        },
        ParamDef {
            name: "context",
            ty: ParamType::Int,
            default: "16",
            doc: "text context length in tokens (start and end tokens included)",
        },
        ParamDef {
            name: "per_class",
            ty: ParamType::Int,
            default: "0",
            doc: "training videos per class (0 = all)",
        },
        ParamDef {
            name: "checkpoint_every",
            ty: ParamType::Int,
            default: "250",
            doc: "steps between checkpoints within an epoch (0: at epoch ends only); a re-attempt continues after the latest",
        },
    ],
};

impl RunKind for PretrainRun {
    fn info(&self) -> &'static PluginInfo {
        &PRETRAIN
    }

    fn uses(&self) -> &'static [Family] {
        &[Family::Dataset]
    }

    fn execute(
        &self,
        job: &Job,
        registry: &Registry,
        reporter: &mut Reporter,
    ) -> Result<(), RunError> {
        on_backend(self, job, registry, reporter)
    }
}

impl Body for PretrainRun {
    fn run<B: FusedAutodiffBackend>(
        &self,
        job: &Job,
        _registry: &Registry,
        reporter: &mut Reporter,
        device: &B::Device,
    ) -> Result<(), RunError> {
        pretrain::<B>(job, reporter, device)
    }
}

fn param(job: &Job, name: &str) -> Result<usize, RunError> {
    Ok(job.param_u64(name)? as usize)
}

/// The shape of a CLIP pretrained from scratch: the same width, depth and heads for both
/// towers, QuickGELU, a `context`-token text tower over `vocab` words, `image`-pixel frames cut
/// in `patch`-pixel patches, an `embed`-wide joint space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmallClip {
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub patch: usize,
    pub embed: usize,
    pub context: usize,
    pub vocab: usize,
    pub image: usize,
}

impl SmallClip {
    /// Its config, with the word-level tokenizer's special ids.
    pub fn config(&self) -> Result<ClipConfig, String> {
        let c = ClipConfig {
            text_config: TextConfig {
                vocab_size: self.vocab,
                hidden_size: self.width,
                intermediate_size: 4 * self.width,
                num_hidden_layers: self.layers,
                num_attention_heads: self.heads,
                max_position_embeddings: self.context,
                hidden_act: Activation::QuickGelu,
                layer_norm_eps: 1e-5,
                bos_token_id: 2,
                pad_token_id: 0,
                eos_token_id: 3,
                projection_dim: Some(self.embed),
            },
            vision_config: VisionConfig {
                hidden_size: self.width,
                intermediate_size: 4 * self.width,
                num_hidden_layers: self.layers,
                num_attention_heads: self.heads,
                num_channels: 3,
                image_size: self.image,
                patch_size: self.patch,
                hidden_act: Activation::QuickGelu,
                layer_norm_eps: 1e-5,
                projection_dim: Some(self.embed),
            },
            projection_dim: self.embed,
            logit_scale_init_value: (1.0f64 / 0.07).ln(),
        };
        c.validate()?;
        Ok(c)
    }
}

/// The model's config from the run's parameters.
fn config(job: &Job, vocab: usize) -> Result<ClipConfig, RunError> {
    SmallClip {
        width: param(job, "width")?,
        layers: param(job, "layers")?,
        heads: param(job, "heads")?,
        patch: param(job, "patch")?,
        embed: param(job, "embed_dim")?,
        context: param(job, "context")?,
        vocab,
        image: job.spec.model.input_size as usize,
    }
    .config()
    .map_err(|m| fail(format!("pretrain parameters: {m}")))
}

/// The videos of one epoch in an order whose consecutive chunks of `batch` hold distinct
/// classes: a contrastive batch must not contain two pairs of one caption (they would be each
/// other's negatives). Each round shuffles the classes and gives each of the first
/// `⌊C / batch⌋ · batch` its next unused video; classes left over wait for the next round.
fn distinct_class_order(
    videos: &[Video],
    classes: usize,
    batch: usize,
    rng: &mut t4v_core::SplitMix64,
) -> Vec<Video> {
    let mut by_class: Vec<Vec<&Video>> = vec![Vec::new(); classes];
    for v in videos {
        by_class[v.label].push(v);
    }
    for list in &mut by_class {
        rng.shuffle(list);
    }
    let mut out = Vec::new();
    loop {
        let mut live: Vec<usize> = (0..classes).filter(|&c| !by_class[c].is_empty()).collect();
        if live.len() < batch {
            return out;
        }
        rng.shuffle(&mut live);
        live.truncate(live.len() / batch * batch);
        for c in live {
            out.push(by_class[c].pop().expect("live classes have videos").clone());
        }
    }
}

/// CLIP's symmetric InfoNCE of a batch of caption/video pairs split over data-parallel peers
/// (`pixels` `[rows, T, 3, H, W]` and `ids` `[rows, L]` are this peer's rows): the loss of the
/// whole batch, on every peer, each differentiating its own rows and the logit scale
/// (clamped at `max_scale`, its log) counted once.
pub fn contrastive_loss<B: FusedAutodiffBackend>(
    model: &ClipModel<B>,
    ctx: &PeerCtx<'_, B>,
    pixels: Tensor<B, 5>,
    ids: Tensor<B, 2, Int>,
    max_scale: f64,
) -> Result<Tensor<B, 1>, RunError> {
    let v = t4v_clip::normalize(embed_videos(model, pixels));
    let t = t4v_clip::normalize(model.encode_text(ids));
    let (v, t) = (ctx.gather_rows(v)?, ctx.gather_rows(t)?);
    let scale = ctx
        .once(model.logit_scale.val())
        .clamp_max(max_scale)
        .exp()
        .unsqueeze::<2>();
    let logits = v.matmul(t.transpose()) * scale;
    let y = Tensor::<B, 1, Int>::arange(0..ctx.batch as i64, ctx.device);
    let ce = CrossEntropyLossConfig::new().init(ctx.device);
    Ok((ce.forward(logits.clone(), y.clone()) + ce.forward(logits.transpose(), y)) / 2.0)
}

/// Video embeddings `[B, D]`: the frames' image embeddings, averaged.
fn embed_videos<B: FusedBackend>(model: &ClipModel<B>, pixels: Tensor<B, 5>) -> Tensor<B, 2> {
    let [b, t, c, h, w] = pixels.dims();
    let x = model.encode_image(pixels.reshape([b * t, c, h, w]));
    let d = x.dims()[1];
    x.reshape([b, t, d]).mean_dim(1).reshape([b, d])
}

fn ids<B: FusedBackend>(
    tokenizer: &ClipTokenizer,
    texts: &[String],
    device: &B::Device,
) -> Result<Tensor<B, 2, Int>, RunError> {
    let ids = tokenizer.encode_batch(texts).map_err(fail)?;
    Ok(t4v_clip::ids_tensor::<B>(&ids, device))
}

/// Zero-shot top-1 of `model` on `source`: each video against every class caption, scored by
/// the cosine classifier and the accuracy every other run kind reports.
fn retrieval_top1<B: FusedBackend>(
    model: &ClipModel<B>,
    tokenizer: &ClipTokenizer,
    classes: &[String],
    source: Arc<dyn ClipSource>,
    job: &Job,
    device: &B::Device,
) -> Result<f64, RunError> {
    let text = model.encode_text(ids::<B>(tokenizer, classes, device)?);
    let d = text.dims()[1];
    let classifier = CosineClassifier::new(text, d, true, Tensor::zeros([1], device));
    let (scores, labels, _) = score_single_view(
        |x| embed_videos(model, x),
        &classifier,
        source,
        eval_loader(&job.spec, 64),
        device,
        |_, _| {},
    )?;
    Ok(accuracy(&scores, classes.len(), &labels).top1)
}

fn pretrain<B: FusedAutodiffBackend>(
    job: &Job,
    reporter: &mut Reporter,
    device: &B::Device,
) -> Result<(), RunError> {
    let spec = &job.spec;
    let dataset = open_dataset(spec, reporter)?;
    let classes = dataset.class_names().to_vec();
    let c = classes.len();
    let mut train = t4v_datasets::videos(dataset.as_ref(), "train").map_err(fail)?;
    let per_class = param(job, "per_class")?;
    if per_class > 0 {
        train =
            t4v_video::protocol::few_shot(&train, c, per_class, spec.seed as u32).map_err(fail)?;
    }
    let test =
        t4v_datasets::source(dataset.as_ref(), &eval_split(dataset.as_ref())?).map_err(fail)?;
    let batch = (spec.optim.batch_size as usize).min(c);
    if batch < 2 {
        return Err(fail(format!(
            "a contrastive batch needs at least 2 classes (optim.batch_size {}, {c} classes)",
            spec.optim.batch_size
        )));
    }

    // The vocabulary: every caption phrasing of every class.
    let corpus: Vec<String> = classes
        .iter()
        .flat_map(|n| CAPTION_TEMPLATES.iter().map(move |t| t.replace("{}", n)))
        .collect();
    let staging = job.run_dir.join("model.partial");
    let io = |path: &std::path::Path| {
        let context = format!("writing {}", path.display());
        move |source| RunError::Io { context, source }
    };
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let tk = t4v_clip::tokenizer::word_level(&corpus).map_err(fail)?;
    let tk_path = staging.join("tokenizer.json");
    tk.save(&tk_path, true)
        .map_err(|e| fail(format!("writing {}: {e}", tk_path.display())))?;
    let config = config(job, tk.get_vocab_size(true))?;
    let tokenizer = ClipTokenizer::from_file(&tk_path, config.text_config.max_position_embeddings)
        .map_err(fail)?;
    let longest = corpus
        .iter()
        .map(|t| tokenizer.ids(t).map(|i| i.len()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?
        .into_iter()
        .max()
        .unwrap_or(0);
    if longest > tokenizer.context() {
        return Err(fail(format!(
            "captions run to {longest} tokens but params.context is {}",
            tokenizer.context()
        )));
    }
    reporter.log(format!(
        "{} classes, {} training videos, vocabulary of {} words, batches of {batch} distinct captions",
        c,
        train.len(),
        config.text_config.vocab_size
    ));

    let o = &spec.optim;
    let peers = job.peers.max(1);
    let checkpoint_every = param(job, "checkpoint_every")?;
    let last_dir = job.run_dir.join("checkpoint").join("last");
    let mut state = LoopState::default();
    let fresh = ClipModel::<B>::init_random(&config, spec.seed, device);
    let mut history = History::default();
    let (model, resume) = match super::resume_from(&last_dir, fresh.clone(), device, reporter) {
        None => (fresh, None),
        Some(r) => {
            (state, history) = (r.state, r.history);
            reporter.log(format!(
                "resuming from the checkpoint after step {} of epoch {} (attempt {})",
                state.iteration,
                state.epoch + 1,
                job.attempt
            ));
            (r.model, Some(r.dir))
        }
    };
    let mut replicas = Replicas::new(peers, peer_threads(peers), model, device, |m, d| {
        let f = Fitter::new(o, 1, m);
        match &resume {
            Some(dir) => f.load(dir, d).map_err(fail),
            None => Ok(f),
        }
    })?;
    let save = |model: &ClipModel<B>,
                fitter: &Fitter<B, ClipModel<B>>,
                state: &LoopState,
                history: &History| {
        fit::save_checkpoint(&last_dir, model, spec, (state, history), Some(fitter)).map_err(fail)
    };
    let schedule = WarmupCosine {
        total_epochs: o.epochs as f64,
        warmup_epochs: o.warmup_epochs as f64,
        final_factor: 0.0,
    };
    let iters = train.len() / c * (c / batch);
    let total = (iters * o.epochs as usize).max(1) as u64;
    let max_scale = 100f64.ln();
    let every = spec.eval.every.max(1);
    let mut step = (state.epoch as usize * iters + state.iteration) as u64;
    let mut last_top1 = state.val_top1;
    for e in state.epoch..o.epochs {
        let mut rng = t4v_core::SplitMix64::new(spec.seed ^ (e as u64 + 1).wrapping_mul(0xA076));
        let order = distinct_class_order(&train, c, batch, &mut rng);
        let iters = order.len() / batch;
        let captions: Vec<String> = order
            .iter()
            .map(|v| {
                CAPTION_TEMPLATES[rng.below(CAPTION_TEMPLATES.len())]
                    .replace("{}", &classes[v.label])
            })
            .collect();
        let source = t4v_datasets::source_of(dataset.as_ref(), order).map_err(fail)?;
        let mut sum = state.loss_sum;
        let mut i = state.iteration;
        let mut batches = epoch_from(source, eval_loader(spec, batch), e as u64, state.position);
        // Not a `for`: a checkpoint reads the loader's position between batches.
        while let Some(b) = batches.next() {
            let b = b.map_err(fail)?;
            let n = b.labels.len();
            let factor = schedule.factor(e as f64 + i as f64 / iters.max(1) as f64);
            let per = b.shape[1..].iter().product::<usize>();
            let first = i * batch;
            if n < peers {
                return Err(fail(format!(
                    "a contrastive batch of {n} pairs cannot be split over {peers} peers"
                )));
            }
            let values = replicas.step(n, factor, true, &|m, ctx| {
                let rows = ctx.rows.clone();
                let mut shape = b.shape;
                shape[0] = rows.len();
                let x = Tensor::<B, 5>::from_data(
                    TensorData::new(b.pixels[rows.start * per..rows.end * per].to_vec(), shape),
                    ctx.device,
                );
                let caps = &captions[first + rows.start..first + rows.end];
                let ids = ids::<B>(&tokenizer, caps, ctx.device)?;
                contrastive_loss(m, ctx, x, ids, max_scale)
            })?;
            let value = values[0];
            if !value.is_finite() {
                return Err(fail(format!(
                    "non-finite loss: train/loss = {value} at epoch {}, iteration {i}",
                    e + 1
                )));
            }
            sum += value;
            step += 1;
            reporter.progress(step, total);
            i += 1;
            if checkpoint_every > 0 && i.is_multiple_of(checkpoint_every) && i < iters {
                state.iteration = i;
                state.position = batches.position();
                state.loss_sum = sum;
                save(replicas.model(), replicas.fitter(), &state, &history)?;
            }
        }
        let epoch_no = e as u64 + 1;
        history.metric(
            reporter,
            "train",
            "loss",
            epoch_no,
            sum / iters.max(1) as f64,
        );
        state.end_epoch(e + 1);
        if (e + 1).is_multiple_of(every) || e + 1 == o.epochs {
            let top1 = retrieval_top1(
                &replicas.model().valid(),
                &tokenizer,
                &classes,
                Arc::clone(&test),
                job,
                device,
            )?;
            history.metric(reporter, "val", "top1", epoch_no, top1);
            last_top1 = Some(top1);
        }
        state.val_top1 = last_top1;
        save(replicas.model(), replicas.fitter(), &state, &history)?;
    }
    let model = replicas.finish()?;
    // The last epoch always validates: its figure is the final model's (no second pass).
    let top1 = match last_top1 {
        Some(t) => t,
        None => retrieval_top1(&model.valid(), &tokenizer, &classes, test, job, device)?,
    };
    reporter.summary("test/top1", top1);
    reporter.summary(
        "logit_scale",
        to_vec(model.logit_scale.val().exp())?[0] as f64,
    );

    model.valid().save(&config, &staging).map_err(fail)?;
    let dir = job.run_dir.join("model");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::rename(&staging, &dir).map_err(io(&dir))?;
    reporter.artefact("model", &dir.to_string_lossy());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrastive_batches_hold_distinct_classes() {
        let videos: Vec<Video> = (0..50)
            .map(|i| Video {
                span: None,
                path: format!("{i}").into(),
                label: i % 5,
                frames: None,
                source: "<test>".into(),
                line: i,
            })
            .collect();
        let mut rng = t4v_core::SplitMix64::new(3);
        let order = distinct_class_order(&videos, 5, 2, &mut rng);
        // 5 classes in batches of 2: 4 videos per round while 4 classes have some left, fewer
        // at the end; whole batches only.
        assert!(
            order.len() >= 40 && order.len().is_multiple_of(2),
            "{}",
            order.len()
        );
        for b in order.chunks(2) {
            assert_ne!(b[0].label, b[1].label);
        }
        let mut seen: Vec<usize> = order.iter().map(|v| v.line).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), order.len(), "no video twice in an epoch");
    }
}
