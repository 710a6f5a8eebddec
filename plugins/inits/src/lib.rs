//! Classifier initialisations: where the classifier W `[C, D]` comes from (REFERENCE.md §1.3).
//! `random` and `orthogonal` are the paper's baselines; `lda` and `class-mean` transfer visual
//! statistics of frozen features; `text` (and `text-bert`, the same init over a BERT-family
//! sentence encoder) embed class-name prompts with a text encoder the caller supplies.
//!
//! The numerics are plain f64 matrices (nalgebra); [`to_tensor`] hands W to burn.

pub mod lda;

use burn::tensor::{Tensor, TensorData, backend::Backend};
use nalgebra::DMatrix;
use t4v_core::PluginInfo;
use t4v_core::plugin::{ClassifierInit, Host, InitInputs, Need, PluginError};

/// The classifier inits of this crate, as the registry lists them.
pub static INITS: &[&dyn ClassifierInit] =
    &[&Random, &Orthogonal, &Lda, &Text, &TextBert, &ClassMean];

/// W ~ N(0, 1), `[C, D]` (the reference's `torch.empty(n_class, n_emb).normal_()`).
pub fn random(classes: usize, dim: usize, seed: u64) -> DMatrix<f64> {
    let mut n = t4v_core::SplitMix64::new(seed ^ 0x6A09_E667_F3BC_C908);
    DMatrix::from_fn(classes, dim, |_, _| n.normal())
}

/// The first C rows of Q from the QR decomposition of a D × D Gaussian (the reference's
/// `np.linalg.qr(A, mode="complete")`): C orthonormal rows. Needs C ≤ D.
pub fn orthogonal(classes: usize, dim: usize, seed: u64) -> Result<DMatrix<f64>, PluginError> {
    if classes > dim {
        return Err(PluginError::Invalid(format!(
            "orthogonal init: {classes} classes cannot have orthonormal rows in {dim} dimensions"
        )));
    }
    let a = random(dim, dim, seed);
    let q = a.qr().q();
    Ok(q.rows(0, classes).into_owned())
}

/// The mean feature of each class, `[C, D]` (visual prototypes).
pub fn class_means(
    features: &DMatrix<f64>,
    labels: &[usize],
    classes: usize,
) -> Result<DMatrix<f64>, PluginError> {
    check(features, labels, classes)?;
    let mut sum = DMatrix::zeros(classes, features.ncols());
    let mut count = vec![0usize; classes];
    for (i, &l) in labels.iter().enumerate() {
        let mut row = sum.row_mut(l);
        row += features.row(i);
        count[l] += 1;
    }
    if let Some(c) = count.iter().position(|&n| n == 0) {
        return Err(PluginError::Invalid(format!("class {c} has no features")));
    }
    for (c, n) in count.iter().enumerate() {
        let mut row = sum.row_mut(c);
        row /= *n as f64;
    }
    Ok(sum)
}

pub(crate) fn check(
    features: &DMatrix<f64>,
    labels: &[usize],
    classes: usize,
) -> Result<(), PluginError> {
    if features.nrows() != labels.len() {
        return Err(PluginError::Invalid(format!(
            "features have {} rows but there are {} labels",
            features.nrows(),
            labels.len()
        )));
    }
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
        return Err(PluginError::Invalid(format!(
            "label {l} of feature {i} is out of range for {classes} classes"
        )));
    }
    Ok(())
}

/// A burn tensor `[N, D]` as an f64 matrix.
pub fn from_tensor<B: Backend>(t: Tensor<B, 2>) -> DMatrix<f64> {
    let [n, d] = t.dims();
    let v: Vec<f32> = t.into_data().convert::<f32>().to_vec().expect("f32 data");
    DMatrix::from_row_iterator(n, d, v.into_iter().map(f64::from))
}

/// An f64 matrix as a burn tensor `[R, C]` (f32).
pub fn to_tensor<B: Backend>(m: &DMatrix<f64>, device: &B::Device) -> Tensor<B, 2> {
    let (r, c) = m.shape();
    let mut data = Vec::with_capacity(r * c);
    for i in 0..r {
        data.extend(m.row(i).iter().map(|&x| x as f32));
    }
    Tensor::from_data(TensorData::new(data, [r, c]), device)
}

fn features(
    inputs: &InitInputs<'_>,
    name: &str,
) -> Result<(DMatrix<f64>, Vec<usize>), PluginError> {
    let (f, l) = inputs.features.as_ref().ok_or_else(|| {
        PluginError::Invalid(format!(
            "{name} init needs frozen training features (a `features` run)"
        ))
    })?;
    Ok((from_tensor(f.clone()), l.clone()))
}

/// `random`: N(0, 1).
pub struct Random;
impl ClassifierInit for Random {
    fn info(&self) -> &'static PluginInfo {
        static INFO: PluginInfo = PluginInfo {
            name: "random",
            summary: "W ~ N(0, 1) (the paper's random baseline)",
            params: &[],
        };
        &INFO
    }
    fn init(&self, x: &InitInputs<'_>) -> Result<Tensor<Host, 2>, PluginError> {
        Ok(to_tensor(
            &random(x.class_names.len(), x.embed_dim, x.seed),
            &Default::default(),
        ))
    }
}

/// `orthogonal`: orthonormal rows (QR).
pub struct Orthogonal;
impl ClassifierInit for Orthogonal {
    fn info(&self) -> &'static PluginInfo {
        static INFO: PluginInfo = PluginInfo {
            name: "orthogonal",
            summary: "orthonormal rows from the QR of a Gaussian (needs C ≤ D)",
            params: &[],
        };
        &INFO
    }
    fn init(&self, x: &InitInputs<'_>) -> Result<Tensor<Host, 2>, PluginError> {
        Ok(to_tensor(
            &orthogonal(x.class_names.len(), x.embed_dim, x.seed)?,
            &Default::default(),
        ))
    }
}

/// `class-mean`: the mean frozen feature of each class.
pub struct ClassMean;
impl ClassifierInit for ClassMean {
    fn info(&self) -> &'static PluginInfo {
        static INFO: PluginInfo = PluginInfo {
            name: "class-mean",
            summary: "the mean frozen feature of each class",
            params: &[],
        };
        &INFO
    }
    fn needs(&self) -> &'static [Need] {
        &[Need::Features]
    }
    fn init(&self, x: &InitInputs<'_>) -> Result<Tensor<Host, 2>, PluginError> {
        let (f, l) = features(x, "class-mean")?;
        Ok(to_tensor(
            &class_means(&f, &l, x.class_names.len())?,
            &Default::default(),
        ))
    }
}

/// `lda`: LDA coefficients on frozen features, with the spec's shrinkage.
pub struct Lda;
impl ClassifierInit for Lda {
    fn info(&self) -> &'static PluginInfo {
        static INFO: PluginInfo = PluginInfo {
            name: "lda",
            summary: "LDA coefficients on frozen features (scikit-learn's lsqr solver; classifier.shrinkage, default 0.1)",
            params: &[],
        };
        &INFO
    }
    fn needs(&self) -> &'static [Need] {
        &[Need::Features]
    }
    fn init(&self, x: &InitInputs<'_>) -> Result<Tensor<Host, 2>, PluginError> {
        let (f, l) = features(x, "lda")?;
        let fit = lda::fit(&f, &l, x.class_names.len(), Some(x.shrinkage))?;
        Ok(to_tensor(&fit.coef, &Default::default()))
    }
}

/// `text`: the CLIP text tower's embeddings of the class names in each template,
/// L2-normalised and averaged over templates (CLIP's prompt ensembling; with one template, its
/// normalised embeddings). W is normalised again by the cosine classifier.
pub struct Text;
impl ClassifierInit for Text {
    fn info(&self) -> &'static PluginInfo {
        static INFO: PluginInfo = PluginInfo {
            name: "text",
            summary: "CLIP text embeddings of the class-name prompts (classifier.template, or classifier.ensemble of 28; the paper's default)",
            params: &[],
        };
        &INFO
    }
    fn needs(&self) -> &'static [Need] {
        &[Need::ClipText]
    }
    fn init(&self, x: &InitInputs<'_>) -> Result<Tensor<Host, 2>, PluginError> {
        prompt_embeddings(x, "text")
    }
}

/// `text-bert`: [`Text`]'s arithmetic over a BERT-family sentence encoder.
pub struct TextBert;
impl ClassifierInit for TextBert {
    fn info(&self) -> &'static PluginInfo {
        static INFO: PluginInfo = PluginInfo {
            name: "text-bert",
            summary: "mean-pooled BERT-family sentence embeddings of the prompts (classifier.text_model; a projection meets the video width)",
            params: &[],
        };
        &INFO
    }
    fn needs(&self) -> &'static [Need] {
        &[Need::SentenceEncoder]
    }
    fn init(&self, x: &InitInputs<'_>) -> Result<Tensor<Host, 2>, PluginError> {
        prompt_embeddings(x, "text-bert")
    }
}

/// The text encoder's embeddings of every class in every template, normalised, averaged over
/// templates.
fn prompt_embeddings(x: &InitInputs<'_>, name: &str) -> Result<Tensor<Host, 2>, PluginError> {
    let text = x
        .text
        .ok_or_else(|| PluginError::Invalid(format!("{name} init needs a text encoder")))?;
    if x.templates.is_empty() {
        return Err(PluginError::Invalid(format!(
            "{name} init needs at least one prompt template"
        )));
    }
    let mut sum: Option<Tensor<Host, 2>> = None;
    for t in x.templates {
        let prompts: Vec<String> = x
            .class_names
            .iter()
            .map(|n| t4v_core::plugin::fill_template(t, n))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                PluginError::Invalid(format!(
                    "prompt template `{t}` has no `{{}}` for the class name"
                ))
            })?;
        let e = text.encode(&prompts)?;
        let norm = e
            .clone()
            .powf_scalar(2.0)
            .sum_dim(1)
            .sqrt()
            .clamp_min(1e-12);
        let e = e / norm;
        sum = Some(match sum {
            Some(s) => s + e,
            None => e,
        });
    }
    Ok(sum.expect("a template") / x.templates.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_and_orthogonal() {
        let w = random(400, 512, 3);
        assert_eq!(w.shape(), (400, 512));
        assert_eq!(w, random(400, 512, 3));
        let mean = w.mean();
        let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / w.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "mean {mean} var {var}"
        );
        let q = orthogonal(40, 64, 1).unwrap();
        let g = &q * q.transpose();
        assert!((g - DMatrix::<f64>::identity(40, 40)).abs().max() < 1e-10);
        assert!(orthogonal(65, 64, 1).is_err());
    }

    #[test]
    fn inits_through_the_core_trait() {
        use burn::backend::Flex;
        let names: Vec<String> = (0..3).map(|i| format!("class {i}")).collect();
        let feats = to_tensor::<Flex>(&random(30, 8, 1), &Default::default());
        let labels: Vec<usize> = (0..30).map(|i| i % 3).collect();
        let x = InitInputs {
            class_names: &names,
            embed_dim: 8,
            text: None,
            templates: &[],
            features: Some((feats, labels)),
            seed: 4,
            shrinkage: 0.1,
        };
        for init in INITS
            .iter()
            .filter(|i| !i.needs().contains(&Need::ClipText))
        {
            if init.needs().contains(&Need::SentenceEncoder) {
                continue;
            }
            assert_eq!(
                init.init(&x).unwrap().dims(),
                [3, 8],
                "{}",
                init.info().name
            );
        }
        let no_features = InitInputs {
            features: None,
            ..x
        };
        assert_eq!(
            Lda.init(&no_features).unwrap_err().to_string(),
            "lda init needs frozen training features (a `features` run)"
        );
    }

    /// A text encoder for testing the init's arithmetic: the prompt's bytes, summed per slot.
    struct Bytes;
    impl t4v_core::plugin::TextEncoder<burn::backend::Flex> for Bytes {
        fn embed_dim(&self) -> usize {
            4
        }
        fn encode(
            &self,
            prompts: &[String],
        ) -> Result<Tensor<burn::backend::Flex, 2>, PluginError> {
            let m = DMatrix::from_fn(prompts.len(), 4, |r, c| {
                prompts[r].bytes().skip(c).step_by(4).map(f64::from).sum()
            });
            Ok(to_tensor(&m, &Default::default()))
        }
    }

    #[test]
    fn text_init_fills_templates_and_averages_normalised_embeddings() {
        use t4v_core::plugin::TextEncoder;
        let names = vec!["abseiling".to_string(), "archery".to_string()];
        let one = vec!["a video of a person {}.".to_string()];
        let two = vec![
            "a video of a person {}.".to_string(),
            "a photo of {}".to_string(),
        ];
        let mk = |templates: &'static [String]| InitInputs {
            class_names: Box::leak(names.clone().into_boxed_slice()),
            embed_dim: 4,
            text: Some(&Bytes),
            templates,
            features: None,
            seed: 0,
            shrinkage: 0.1,
        };
        let w1 = from_tensor(
            Text.init(&mk(Box::leak(one.clone().into_boxed_slice())))
                .unwrap(),
        );
        let e = from_tensor(
            Bytes
                .encode(&["a video of a person abseiling.".to_string()])
                .unwrap(),
        );
        let want = &e / e.norm();
        assert!((w1.row(0) - want.row(0)).abs().max() < 1e-6);
        let w2 = from_tensor(Text.init(&mk(Box::leak(two.into_boxed_slice()))).unwrap());
        let e2 = from_tensor(Bytes.encode(&["a photo of archery".to_string()]).unwrap());
        let e1 = from_tensor(
            Bytes
                .encode(&["a video of a person archery.".to_string()])
                .unwrap(),
        );
        let avg = (&e1 / e1.norm() + &e2 / e2.norm()) / 2.0;
        assert!((w2.row(1) - avg.row(0)).abs().max() < 1e-6);
        let bad = vec!["no slot".to_string()];
        let err = Text
            .init(&mk(Box::leak(bad.into_boxed_slice())))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "prompt template `no slot` has no `{}` for the class name"
        );
    }

    #[test]
    fn class_means_and_errors() {
        let f = DMatrix::from_row_slice(4, 2, &[1.0, 2.0, 3.0, 4.0, 10.0, 0.0, 20.0, 0.0]);
        let m = class_means(&f, &[0, 0, 1, 1], 2).unwrap();
        assert_eq!(m, DMatrix::from_row_slice(2, 2, &[2.0, 3.0, 15.0, 0.0]));
        assert_eq!(
            class_means(&f, &[0, 0, 0, 0], 2).unwrap_err().to_string(),
            "class 1 has no features"
        );
        assert_eq!(
            class_means(&f, &[0, 0, 5, 0], 2).unwrap_err().to_string(),
            "label 5 of feature 2 is out of range for 2 classes"
        );
    }
}
