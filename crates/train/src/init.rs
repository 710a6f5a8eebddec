//! The classifier W of a run: the init its spec names (`classifier.init`), found in the
//! registry, given what that init declares it needs — the CLIP text tower, a BERT-family
//! sentence encoder (`classifier.text_model`) or frozen training features. Nothing here names
//! an init: a new one is a type in an init crate and a line in the registry.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use t4v_core::plugin::{ClassifierInit, Host, InitInputs, Need, PluginError, TextEncoder};
use t4v_core::{Registry, RunError, RunSpec};
use t4v_fused::FusedBackend;

use crate::cache::Features;

fn fail(e: impl std::fmt::Display) -> RunError {
    RunError::Failed(e.to_string())
}

/// The init a spec names (resolved specs name a listed one; a job file written by another
/// build may not).
pub fn classifier_init(
    registry: &Registry,
    spec: &RunSpec,
) -> Result<&'static dyn ClassifierInit, RunError> {
    registry.init(&spec.classifier.init).ok_or_else(|| {
        let known: Vec<&str> = registry.inits.iter().map(|i| i.info().name).collect();
        fail(format!(
            "classifier.init `{}` is not in this build (known: {})",
            spec.classifier.init,
            known.join(", ")
        ))
    })
}

/// Per-video features `[N, D]` (the mean over frames, as the frozen CLIP video embedding of
/// the reference's LDA) with their labels.
pub fn video_features<B: Backend>(f: &Features, device: &B::Device) -> (Tensor<B, 2>, Vec<usize>) {
    let [n, t, d] = f.shape;
    let x = Tensor::<B, 3>::from_data(TensorData::new(f.data.clone(), [n, t, d]), device)
        .mean_dim(1)
        .reshape([n, d]);
    (x, f.labels.clone())
}

/// The CLIP model (with its tokenizer) of `backbone` when the spec's init needs the CLIP text
/// tower ([`Need::ClipText`]); `None` for every other init.
pub fn text_tower<B: FusedBackend>(
    registry: &Registry,
    spec: &RunSpec,
    backbone: &str,
    device: &B::Device,
) -> Result<Option<t4v_clip::Clip<B>>, RunError> {
    if !classifier_init(registry, spec)?
        .needs()
        .contains(&Need::ClipText)
    {
        return Ok(None);
    }
    t4v_clip::Clip::<B>::load(backbone, device)
        .map(Some)
        .map_err(fail)
}

/// The class names as prompts see them (normalised when the spec asks).
pub fn prompt_names(spec: &RunSpec, classes: &[String]) -> Vec<String> {
    if spec.classifier.normalize_names {
        classes
            .iter()
            .map(|c| t4v_video::names::normalize(c))
            .collect()
    } else {
        classes.to_vec()
    }
}

/// A text encoder on the run's device, seen from [`Host`] (inits compute there).
struct OnHost<'a, B: Backend>(&'a dyn TextEncoder<B>);

impl<B: Backend> TextEncoder<Host> for OnHost<'_, B> {
    fn embed_dim(&self) -> usize {
        self.0.embed_dim()
    }
    fn encode(&self, prompts: &[String]) -> Result<Tensor<Host, 2>, PluginError> {
        let e = self.0.encode(prompts)?;
        Ok(Tensor::from_data(
            e.into_data().convert::<f32>(),
            &Default::default(),
        ))
    }
}

/// W `[C, D']` for a run on `device`, as a plain tensor (no autodiff history).
///
/// `clip` is the CLIP model of the run (from [`text_tower`]) when the init needs its text
/// tower; `features` the frozen training features when it needs those.
pub fn classifier_weights<B: FusedBackend>(
    registry: &Registry,
    spec: &RunSpec,
    classes: &[String],
    embed_dim: usize,
    clip: Option<&t4v_clip::Clip<B>>,
    features: Option<&Features>,
    device: &B::Device,
) -> Result<Tensor<B, 2>, RunError> {
    let init = classifier_init(registry, spec)?;
    let name = &spec.classifier.init;
    let names = prompt_names(spec, classes);
    let templates = if spec.classifier.ensemble {
        t4v_clip::tokenizer::ensemble_templates()
    } else {
        vec![spec.classifier.template.clone()]
    };
    // Text encoders run on the run's device; the init sees their embeddings on the host.
    let bert = if init.needs().contains(&Need::SentenceEncoder) {
        Some(
            t4v_bert::SentenceEncoder::<B>::load(&spec.classifier.text_model, device)
                .map_err(fail)?,
        )
    } else {
        None
    };
    let mut text: Option<OnHost<'_, B>> = None;
    let mut feats = None;
    for need in init.needs() {
        match need {
            Need::ClipText => {
                let clip = clip.ok_or_else(|| {
                    fail(format!(
                        "classifier.init `{name}` needs the CLIP text tower"
                    ))
                })?;
                text = Some(OnHost(clip));
            }
            Need::SentenceEncoder => text = bert.as_ref().map(|b| OnHost(b)),
            Need::Features => {
                let f = features.ok_or_else(|| {
                    fail(format!(
                        "classifier.init `{name}` needs frozen training features: add \
                         `needs: #{{ features: <a features run> }}` (the paper's LDA: per_class 60)"
                    ))
                })?;
                feats = Some(video_features::<Host>(f, &Default::default()));
            }
            // What the run always has (its CLIP checkpoint, its dataset).
            Need::Clip | Need::DataFolder => {}
        }
    }
    let inputs = InitInputs {
        class_names: &names,
        embed_dim,
        text: text.as_ref().map(|t| t as &dyn TextEncoder<Host>),
        templates: &templates,
        features: feats,
        seed: spec.seed,
        shrinkage: spec.classifier.shrinkage,
    };
    let w = init.init(&inputs).map_err(fail)?;
    let [c, _] = w.dims();
    if c != classes.len() {
        return Err(fail(format!(
            "classifier init `{name}` gave {c} rows for {} classes",
            classes.len()
        )));
    }
    // On the run's device, without history: W is data, trained or not.
    Ok(Tensor::from_data(w.into_data(), device))
}
