//! The classifier W of a run, from the init its spec names (`classifier.init`) and what that
//! init needs: the CLIP text tower (`text`), a BERT-family sentence encoder (`text-bert`) or
//! frozen training features (`lda`, `class-mean`).

use burn::tensor::{Tensor, TensorData};
use t4v_core::plugin::{ClassifierInit, InitInputs, TextEncoder};
use t4v_core::{RunError, RunSpec};
use t4v_fused::FusedBackend;

use crate::cache::Features;

fn fail(e: impl std::fmt::Display) -> RunError {
    RunError::Failed(e.to_string())
}

/// Per-video features `[N, D]` (the mean over frames, as the frozen CLIP video embedding of
/// the reference's LDA) with their labels.
pub fn video_features<B: FusedBackend>(
    f: &Features,
    device: &B::Device,
) -> (Tensor<B, 2>, Vec<usize>) {
    let [n, t, d] = f.shape;
    let x = Tensor::<B, 3>::from_data(TensorData::new(f.data.clone(), [n, t, d]), device)
        .mean_dim(1)
        .reshape([n, d]);
    (x, f.labels.clone())
}

/// The CLIP model (with its tokenizer) of `backbone` when the spec's init embeds prompts with
/// the CLIP text tower (`text`); `None` for every other init.
pub fn text_tower<B: FusedBackend>(
    spec: &RunSpec,
    backbone: &str,
    device: &B::Device,
) -> Result<Option<t4v_clip::Clip<B>>, RunError> {
    if spec.classifier.init != "text" {
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

/// W `[C, D']` for a run, as a plain tensor (no autodiff history).
///
/// `clip` is the CLIP model of the run when `text` needs it; `features` the frozen training
/// features when `lda`/`class-mean` need them.
pub fn classifier_weights<B: FusedBackend>(
    spec: &RunSpec,
    classes: &[String],
    embed_dim: usize,
    clip: Option<&t4v_clip::Clip<B>>,
    features: Option<&Features>,
    device: &B::Device,
) -> Result<Tensor<B, 2>, RunError> {
    let names = prompt_names(spec, classes);
    let templates = if spec.classifier.ensemble {
        t4v_clip::tokenizer::ensemble_templates()
    } else {
        vec![spec.classifier.template.clone()]
    };
    let lda = t4v_inits::Lda {
        shrinkage: Some(spec.classifier.shrinkage),
    };
    let bert;
    let (init, text): (&dyn ClassifierInit<B>, Option<&dyn TextEncoder<B>>) =
        match spec.classifier.init.as_str() {
            "random" => (&t4v_inits::Random, None),
            "orthogonal" => (&t4v_inits::Orthogonal, None),
            "class-mean" => (&t4v_inits::ClassMean, None),
            "lda" => (&lda, None),
            "text" => (
                &t4v_inits::Text,
                Some(
                    clip.ok_or_else(|| fail("the text init needs the CLIP model"))?
                        as &dyn TextEncoder<B>,
                ),
            ),
            "text-bert" => {
                bert = t4v_bert::SentenceEncoder::<B>::load(&spec.classifier.text_model, device)
                    .map_err(fail)?;
                (&t4v_inits::Text, Some(&bert as &dyn TextEncoder<B>))
            }
            other => {
                return Err(fail(format!(
                    "classifier.init `{other}` has no implementation in this build"
                )));
            }
        };
    let features = if init.needs_features() {
        let f = features.ok_or_else(|| {
            fail(format!(
                "classifier.init `{}` needs frozen training features: add \
                 `needs: #{{ features: <a features run> }}` (the paper's LDA: per_class 60)",
                spec.classifier.init
            ))
        })?;
        Some(video_features::<B>(f, device))
    } else {
        None
    };
    let inputs = InitInputs::<B> {
        class_names: &names,
        embed_dim,
        text,
        templates: &templates,
        features,
        seed: spec.seed,
        device: device.clone(),
    };
    let w = init.init(&inputs).map_err(fail)?;
    let [c, _] = w.dims();
    if c != classes.len() {
        return Err(fail(format!(
            "classifier init `{}` gave {c} rows for {} classes",
            spec.classifier.init,
            classes.len()
        )));
    }
    // Cut any autodiff history: W is data, trained or not.
    Ok(Tensor::from_data(w.into_data(), device))
}
