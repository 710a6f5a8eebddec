//! `fetch` and `embed`: getting CLIP checkpoints, and computing embeddings with them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::{Tensor, TensorData};
use clap::Args;
use safetensors::{Dtype, SafeTensors};
use t4v_clip::Clip;

/// `fetch <id>`: downloads config, weights and tokenizer into the HF cache.
pub fn fetch(model: &str) -> Result<()> {
    let files = t4v_clip::hub::fetch(model, true)?;
    println!("{model}:");
    for p in [&files.config, &files.weights, &files.tokenizer] {
        println!("  {}", p.display());
    }
    Ok(())
}

#[derive(Args)]
pub struct EmbedArgs {
    /// A model folder in HF layout, or a Hugging Face model id.
    #[arg(long)]
    pub model: String,
    /// A text to embed (repeatable).
    #[arg(long = "text")]
    pub texts: Vec<String>,
    /// A file of texts, one per line.
    #[arg(long = "texts")]
    pub texts_file: Option<PathBuf>,
    /// A safetensors file with `pixel_values` `[M, 3, H, W]`, already normalised.
    #[arg(long)]
    pub pixels: Option<PathBuf>,
    /// Output safetensors file.
    #[arg(long)]
    pub out: PathBuf,
    /// Batch size of the encoders.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value = "cpu", value_parser = clap::builder::PossibleValuesParser::new(crate::backend::BACKENDS))]
    pub backend: String,
}

pub fn embed(args: &EmbedArgs) -> Result<()> {
    crate::backend::check(&args.backend)?;
    match args.backend.as_str() {
        #[cfg(feature = "cuda")]
        "cuda" => embed_with::<crate::backend::Cuda>(args, &Default::default()),
        _ => embed_with::<crate::backend::Cpu>(args, &Default::default()),
    }
}

/// Writes f32 tensors (name → shape, row-major values) as a safetensors file.
pub fn write_f32(
    path: &Path,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    meta: Option<std::collections::HashMap<String, String>>,
) -> Result<()> {
    let bytes: BTreeMap<&String, Vec<u8>> = tensors
        .iter()
        .map(|(k, (_, d))| (k, d.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (s, _))| {
            let v = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), &bytes[k])
                .expect("consistent sizes");
            (k.clone(), v)
        })
        .collect();
    safetensors::serialize_to_file(views, meta, path)
        .with_context(|| format!("writing {}", path.display()))
}

fn read_pixels(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let v = st
        .tensor("pixel_values")
        .with_context(|| format!("{}: no tensor `pixel_values`", path.display()))?;
    ensure!(
        v.shape().len() == 4,
        "{}: `pixel_values` has shape {:?}, expected [M, 3, H, W]",
        path.display(),
        v.shape()
    );
    let data = match v.dtype() {
        Dtype::F32 => v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => v
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => bail!(
            "{}: `pixel_values` is {other:?}; write it as F32",
            path.display()
        ),
    };
    Ok((v.shape().to_vec(), data))
}

fn embed_with<B: t4v_fused::FusedBackend>(args: &EmbedArgs, device: &B::Device) -> Result<()> {
    let mut texts = args.texts.clone();
    if let Some(f) = &args.texts_file {
        let body =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        texts.extend(
            body.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
    }
    ensure!(
        !texts.is_empty() || args.pixels.is_some(),
        "nothing to embed: give --text, --texts or --pixels"
    );
    let clip = Clip::<B>::load(&args.model, device)?;
    let mut out: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    let to_host = |t: Tensor<B, 2>| -> (Vec<usize>, Vec<f32>) {
        let dims = t.dims().to_vec();
        (
            dims,
            t.into_data().convert::<f32>().to_vec().expect("f32 data"),
        )
    };
    let text_features = if texts.is_empty() {
        None
    } else {
        let t = clip.encode_texts(&texts, false, args.batch)?;
        out.insert("text_features".into(), to_host(t.clone()));
        Some(t)
    };
    let image_features = match &args.pixels {
        None => None,
        Some(p) => {
            let (shape, data) = read_pixels(p)?;
            let s = clip.config.vision_config.image_size;
            ensure!(
                shape[1] == clip.config.vision_config.num_channels
                    && shape[2] == s
                    && shape[3] == s,
                "{}: `pixel_values` has shape {shape:?}; this model takes [M, {}, {s}, {s}]",
                p.display(),
                clip.config.vision_config.num_channels
            );
            let pixels = Tensor::<B, 4>::from_data(TensorData::new(data, shape), device);
            let f = clip.model.encode_images_batched(pixels, args.batch);
            out.insert("image_features".into(), to_host(f.clone()));
            Some(f)
        }
    };
    if let (Some(i), Some(t)) = (image_features, text_features) {
        out.insert(
            "logits_per_image".into(),
            to_host(clip.model.logits_per_image(i, t)),
        );
    }
    let meta: std::collections::HashMap<String, String> = [
        ("model".to_string(), args.model.clone()),
        ("texts".to_string(), serde_json::to_string(&texts)?),
    ]
    .into();
    write_f32(&args.out, &out, Some(meta))?;
    for (k, (s, _)) in &out {
        println!("{k} {s:?}");
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
