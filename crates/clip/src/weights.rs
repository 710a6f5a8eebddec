//! Reading CLIP weights from safetensors. The mapping between checkpoint names and the modules
//! lives here and nowhere else: OpenAI names (`visual.transformer.resblocks.N.attn.in_proj_weight`,
//! ...) are renamed to Hugging Face names (`vision_model.encoder.layers.N.self_attn.q_proj.weight`,
//! ...) on load, splitting fused q/k/v and transposing the projections, so the model code only
//! knows one naming.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use t4v_core::SplitMix64;

use crate::ClipError;

/// A tensor read from a checkpoint, as f32.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl RawTensor {
    fn transpose2(&self) -> RawTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut data = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        RawTensor {
            shape: vec![c, r],
            data,
        }
    }

    /// Rows `[start, start + n)` of the first dimension.
    fn rows(&self, start: usize, n: usize) -> RawTensor {
        let row: usize = self.shape[1..].iter().product();
        let mut shape = self.shape.clone();
        shape[0] = n;
        RawTensor {
            shape,
            data: self.data[start * row..(start + n) * row].to_vec(),
        }
    }
}

/// The naming a checkpoint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    HuggingFace,
    OpenAi,
}

/// Tensors of a checkpoint by (Hugging Face) name; taking a tensor checks its shape, and
/// [`Weights::finish`] reports any tensor nobody took.
///
/// A `Weights` can also be a random initialisation ([`Weights::random`]): every tensor asked
/// for is drawn on the spot, so models built from scratch go through the same code as loaded
/// ones.
pub struct Weights {
    path: PathBuf,
    tensors: BTreeMap<String, RawTensor>,
    pub naming: Naming,
    random: Option<SplitMix64>,
}

/// The initial value of a freshly created tensor, by name: LayerNorm scales 1, biases 0, the
/// logit scale ln(1/0.07) (CLIP's initialisation), everything else N(0, 0.02).
fn init_value(name: &str, n: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let is_norm = name.contains("norm") || name.contains("layrnorm");
    if is_norm && name.ends_with(".weight") {
        vec![1.0; n]
    } else if name.ends_with(".bias") {
        vec![0.0; n]
    } else if name == "logit_scale" {
        vec![(1.0f32 / 0.07).ln(); n]
    } else {
        (0..n).map(|_| 0.02 * rng.normal() as f32).collect()
    }
}

/// Entries of OpenAI state dicts that are not weights.
const OPENAI_SCALARS: &[&str] = &["input_resolution", "context_length", "vocab_size"];

fn to_f32(path: &Path, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, ClipError> {
    let bad = |m: String| ClipError::Weights {
        path: path.to_path_buf(),
        message: format!("tensor `{name}`: {m}"),
    };
    let chunks = |n: usize| -> Result<std::slice::ChunksExact<'_, u8>, ClipError> {
        if !bytes.len().is_multiple_of(n) {
            return Err(bad(format!(
                "{} bytes is not a whole number of {dtype:?} values",
                bytes.len()
            )));
        }
        Ok(bytes.chunks_exact(n))
    };
    Ok(match dtype {
        Dtype::F32 => chunks(4)?
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => chunks(2)?
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => chunks(2)?
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => chunks(8)?
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => return Err(bad(format!("dtype {other:?} is not a float type"))),
    })
}

impl Weights {
    /// Reads every tensor of a safetensors file.
    pub fn from_file(path: &Path) -> Result<Weights, ClipError> {
        let bytes = std::fs::read(path).map_err(|source| ClipError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Weights, ClipError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| ClipError::Weights {
            path: path.to_path_buf(),
            message: format!("not a readable safetensors file (truncated or corrupt?): {e}"),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if name.ends_with("position_ids") || OPENAI_SCALARS.contains(&name.as_str()) {
                continue; // buffers, not weights
            }
            let data = to_f32(path, &name, view.dtype(), view.data())?;
            tensors.insert(
                name,
                RawTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        let naming = if tensors
            .keys()
            .any(|k| k.starts_with("visual.") || k == "text_projection")
        {
            Naming::OpenAi
        } else {
            Naming::HuggingFace
        };
        let mut w = Weights {
            path: path.to_path_buf(),
            tensors,
            naming,
            random: None,
        };
        if naming == Naming::OpenAi {
            w.rename_openai()?;
        }
        Ok(w)
    }

    /// Tensors given by name (HF-style), e.g. an initialisation drawn elsewhere.
    pub fn from_tensors(label: &str, tensors: BTreeMap<String, RawTensor>) -> Weights {
        Weights {
            path: PathBuf::from(label),
            tensors,
            naming: Naming::HuggingFace,
            random: None,
        }
    }

    /// A random initialisation from `seed` (deterministic).
    pub fn random(seed: u64) -> Weights {
        Weights {
            path: PathBuf::from("<random initialisation>"),
            tensors: BTreeMap::new(),
            naming: Naming::HuggingFace,
            random: Some(SplitMix64::new(seed ^ 0x5EED_C11F)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of the tensors not taken yet.
    pub fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    /// The shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }

    /// Number of `prefix.N.` blocks present.
    pub fn count_layers(&self, prefix: &str) -> usize {
        let mut n = 0;
        while self
            .tensors
            .keys()
            .any(|k| k.starts_with(&format!("{prefix}.{n}.")))
        {
            n += 1;
        }
        n
    }

    /// Removes and returns a tensor, checking its shape.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<RawTensor, ClipError> {
        if let Some(rng) = &mut self.random {
            let n = shape.iter().product();
            return Ok(RawTensor {
                shape: shape.to_vec(),
                data: init_value(name, n, rng),
            });
        }
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| ClipError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
                naming: self.naming,
            })?;
        if t.shape != shape {
            return Err(ClipError::ShapeMismatch {
                path: self.path.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape,
            });
        }
        Ok(t)
    }

    /// Fails if any tensor was not used by the model.
    pub fn finish(self) -> Result<(), ClipError> {
        if self.tensors.is_empty() {
            return Ok(());
        }
        Err(ClipError::UnexpectedTensors {
            path: self.path,
            names: self.tensors.into_keys().collect(),
        })
    }

    fn rename(&mut self, from: &str, to: &str) {
        if let Some(t) = self.tensors.remove(from) {
            self.tensors.insert(to.to_string(), t);
        }
    }

    /// OpenAI names → Hugging Face names.
    fn rename_openai(&mut self) -> Result<(), ClipError> {
        for (tower, oa) in [
            ("vision_model", "visual.transformer.resblocks"),
            ("text_model", "transformer.resblocks"),
        ] {
            let layers = self.count_layers(oa);
            for i in 0..layers {
                let src = format!("{oa}.{i}.");
                let dst = format!("{tower}.encoder.layers.{i}.");
                for (p, o) in [("weight", "in_proj_weight"), ("bias", "in_proj_bias")] {
                    let Some(fused) = self.tensors.remove(&format!("{src}attn.{o}")) else {
                        continue;
                    };
                    if !fused.shape[0].is_multiple_of(3) {
                        return Err(ClipError::ShapeMismatch {
                            path: self.path.clone(),
                            name: format!("{src}attn.{o}"),
                            expected: vec![3 * (fused.shape[0] / 3)],
                            found: fused.shape,
                        });
                    }
                    let d = fused.shape[0] / 3;
                    for (k, q) in ["q", "k", "v"].iter().enumerate() {
                        self.tensors
                            .insert(format!("{dst}self_attn.{q}_proj.{p}"), fused.rows(k * d, d));
                    }
                }
                for (a, b) in [
                    ("attn.out_proj", "self_attn.out_proj"),
                    ("ln_1", "layer_norm1"),
                    ("ln_2", "layer_norm2"),
                    ("mlp.c_fc", "mlp.fc1"),
                    ("mlp.c_proj", "mlp.fc2"),
                ] {
                    for p in ["weight", "bias"] {
                        self.rename(&format!("{src}{a}.{p}"), &format!("{dst}{b}.{p}"));
                    }
                }
            }
        }
        for (a, b) in [
            (
                "visual.conv1.weight",
                "vision_model.embeddings.patch_embedding.weight",
            ),
            (
                "visual.class_embedding",
                "vision_model.embeddings.class_embedding",
            ),
            (
                "visual.positional_embedding",
                "vision_model.embeddings.position_embedding.weight",
            ),
            ("visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"),
            ("visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"),
            (
                "visual.ln_post.weight",
                "vision_model.post_layernorm.weight",
            ),
            ("visual.ln_post.bias", "vision_model.post_layernorm.bias"),
            (
                "token_embedding.weight",
                "text_model.embeddings.token_embedding.weight",
            ),
            (
                "positional_embedding",
                "text_model.embeddings.position_embedding.weight",
            ),
            ("ln_final.weight", "text_model.final_layer_norm.weight"),
            ("ln_final.bias", "text_model.final_layer_norm.bias"),
        ] {
            self.rename(a, b);
        }
        // OpenAI projections are `x @ proj` ([width, D]); HF stores Linear weights [D, width].
        for (a, b) in [
            ("visual.proj", "visual_projection.weight"),
            ("text_projection", "text_projection.weight"),
        ] {
            if let Some(t) = self.tensors.remove(a) {
                self.tensors.insert(b.to_string(), t.transpose2());
            }
        }
        Ok(())
    }

    /// Infers a config from the tensor shapes, for OpenAI checkpoints shipped without a
    /// `config.json` (heads = width / 64, as in OpenAI's `build_model`).
    pub fn infer_config(&self) -> Result<crate::ClipConfig, ClipError> {
        let need = |name: &str| {
            self.shape(name)
                .map(|s| s.to_vec())
                .ok_or_else(|| ClipError::MissingTensor {
                    path: self.path.clone(),
                    name: name.to_string(),
                    naming: self.naming,
                })
        };
        let conv = need("vision_model.embeddings.patch_embedding.weight")?;
        let vpos = need("vision_model.embeddings.position_embedding.weight")?;
        let tok = need("text_model.embeddings.token_embedding.weight")?;
        let tpos = need("text_model.embeddings.position_embedding.weight")?;
        let proj = need("visual_projection.weight")?;
        let fc1v = need("vision_model.encoder.layers.0.mlp.fc1.weight")?;
        let fc1t = need("text_model.encoder.layers.0.mlp.fc1.weight")?;
        let grid = ((vpos[0] - 1) as f64).sqrt().round() as usize;
        let mut cfg = crate::ClipConfig {
            projection_dim: proj[0],
            ..Default::default()
        };
        let v = &mut cfg.vision_config;
        v.hidden_size = conv[0];
        v.num_channels = conv[1];
        v.patch_size = conv[2];
        v.image_size = grid * conv[2];
        v.num_hidden_layers = self.count_layers("vision_model.encoder.layers");
        v.num_attention_heads = (conv[0] / 64).max(1);
        v.intermediate_size = fc1v[0];
        let t = &mut cfg.text_config;
        t.vocab_size = tok[0];
        t.hidden_size = tok[1];
        t.max_position_embeddings = tpos[0];
        t.num_hidden_layers = self.count_layers("text_model.encoder.layers");
        t.num_attention_heads = (tok[1] / 64).max(1);
        t.intermediate_size = fc1t[0];
        t.eos_token_id = 2;
        cfg.validate().map_err(|message| ClipError::Config {
            path: self.path.clone(),
            message,
        })?;
        Ok(cfg)
    }
}

/// Tensors collected from a model under their Hugging Face names, for writing a checkpoint that
/// [`Weights::from_file`] (and `transformers`) read back. The modules put their own tensors
/// (`export` next to each `load`), so the names stay beside the code that reads them.
#[derive(Clone, Debug, Default)]
pub struct Export {
    pub tensors: BTreeMap<String, RawTensor>,
}

impl Export {
    /// Adds a tensor under `name` with the checkpoint's `shape` (same element count).
    pub fn put<B: burn::tensor::backend::Backend, const D: usize>(
        &mut self,
        name: &str,
        t: burn::tensor::Tensor<B, D>,
        shape: &[usize],
    ) {
        let data: Vec<f32> = t
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("float tensors read back as f32");
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "export of `{name}`: shape {shape:?} does not match the tensor"
        );
        self.tensors.insert(
            name.to_string(),
            RawTensor {
                shape: shape.to_vec(),
                data,
            },
        );
    }

    /// Writes the tensors as f32 safetensors (with `format: pt` metadata, as `transformers` saves).
    pub fn write(&self, path: &Path) -> Result<(), ClipError> {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(n, t)| {
                let b = t.data.iter().flat_map(|x| x.to_le_bytes()).collect();
                (n.clone(), b, t.shape.clone())
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
            .iter()
            .map(|(n, b, s)| {
                let v = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                    .expect("sizes agree");
                (n.clone(), v)
            })
            .collect();
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(meta), path).map_err(|e| ClipError::Weights {
            path: path.to_path_buf(),
            message: format!("writing: {e}"),
        })
    }
}
