//! Parity with `transformers.CLIPModel` on the tiny random checkpoints of `fixtures/`
//! (made by `fixtures/make_fixtures.py`), and the loader's errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;
use t4v_clip::{ClipConfig, ClipError, ClipModel, Weights, ids_tensor};

type B = Flex;

/// Largest absolute difference allowed against the reference.
const TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

struct Io {
    f32s: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    ids: Vec<Vec<i64>>,
}

fn read_io(name: &str) -> Io {
    let bytes = std::fs::read(fixtures().join(name).join("io.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut f32s = BTreeMap::new();
    let mut ids = Vec::new();
    for (k, v) in st.tensors() {
        match v.dtype() {
            safetensors::Dtype::F32 => {
                let data = v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                f32s.insert(k, (v.shape().to_vec(), data));
            }
            safetensors::Dtype::I64 => {
                let flat: Vec<i64> = v
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                ids = flat.chunks(v.shape()[1]).map(|r| r.to_vec()).collect();
            }
            other => panic!("unexpected dtype {other:?}"),
        }
    }
    Io { f32s, ids }
}

fn tensor<const D: usize>(io: &Io, name: &str) -> Tensor<B, D> {
    let (shape, data) = &io.f32s[name];
    Tensor::from_data(
        TensorData::new(data.clone(), shape.clone()),
        &Default::default(),
    )
}

fn max_diff<const D: usize>(name: &str, got: Tensor<B, D>, want: Tensor<B, D>) -> f32 {
    assert_eq!(got.dims(), want.dims(), "{name}: shape");
    let d: f32 = (got - want).abs().max().into_scalar();
    assert!(d <= TOL, "{name}: max |diff| {d} > {TOL}");
    d
}

fn check(name: &str, weights_file: &str, with_config: bool) {
    let device = Default::default();
    let dir = fixtures().join(name);
    let weights = Weights::from_file(&dir.join(weights_file)).unwrap();
    let config = if with_config {
        ClipConfig::from_file(&dir.join("config.json")).unwrap()
    } else {
        let mut c = weights.infer_config().unwrap();
        // Shapes cannot tell heads, activation and LN eps; take them from the config.
        let real = ClipConfig::from_file(&dir.join("config.json")).unwrap();
        c.text_config.num_attention_heads = real.text_config.num_attention_heads;
        c.vision_config.num_attention_heads = real.vision_config.num_attention_heads;
        c.text_config.eos_token_id = real.text_config.eos_token_id;
        assert_eq!(c.text_config.hidden_size, real.text_config.hidden_size);
        assert_eq!(c.vision_config.image_size, real.vision_config.image_size);
        assert_eq!(c.vision_config.patch_size, real.vision_config.patch_size);
        assert_eq!(c.projection_dim, real.projection_dim);
        c
    };
    let model = ClipModel::<B>::from_weights(&config, weights, &device).unwrap();
    let io = read_io(name);
    let pixels = tensor::<4>(&io, "pixel_values");
    let ids = ids_tensor::<B>(&io.ids, &device);

    let vis = model.vision_forward(pixels.clone());
    let mut diffs = vec![
        max_diff(
            "vision_last_hidden_state",
            vis.last_hidden_state,
            tensor(&io, "vision_last_hidden_state"),
        ),
        max_diff("vision_pooled", vis.pooled, tensor(&io, "vision_pooled")),
    ];
    let txt = model.text_forward(ids.clone());
    diffs.push(max_diff(
        "text_last_hidden_state",
        txt.last_hidden_state,
        tensor(&io, "text_last_hidden_state"),
    ));
    diffs.push(max_diff(
        "text_pooled",
        txt.pooled,
        tensor(&io, "text_pooled"),
    ));
    let img = model.encode_image(pixels);
    let text = model.encode_text(ids);
    diffs.push(max_diff(
        "image_features",
        img.clone(),
        tensor(&io, "image_features"),
    ));
    diffs.push(max_diff(
        "text_features",
        text.clone(),
        tensor(&io, "text_features"),
    ));
    diffs.push(max_diff(
        "logits_per_image",
        model.logits_per_image(img, text),
        tensor(&io, "logits_per_image"),
    ));
    eprintln!("{name} ({weights_file}): max |diff| per output {diffs:?}");
}

#[test]
fn tiny_a_matches_transformers() {
    check("tiny-a", "model.safetensors", true);
}

#[test]
fn tiny_b_matches_transformers() {
    check("tiny-b", "model.safetensors", true);
}

#[test]
fn tiny_c_matches_transformers() {
    check("tiny-c", "model.safetensors", true);
}

#[test]
fn openai_names_load_to_the_same_model() {
    check("tiny-a", "openai.safetensors", true);
    check("tiny-a", "openai.safetensors", false);
}

#[test]
fn a_model_folder_loads_with_its_config() {
    let (model, config) =
        ClipModel::<B>::load(&fixtures().join("tiny-b"), &Default::default()).unwrap();
    assert_eq!(model.embed_dim(), 24);
    assert_eq!(config.vision_config.patch_size, 4);
}

/// Rewrites tiny-a's weights with `edit` applied, and returns the load error.
fn load_error(edit: impl FnOnce(&mut BTreeMap<String, (Vec<usize>, Vec<f32>)>)) -> String {
    let dir = fixtures().join("tiny-a");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut m: BTreeMap<String, (Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                (
                    v.shape().to_vec(),
                    v.data()
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
            )
        })
        .collect();
    edit(&mut m);
    let bytes: BTreeMap<String, Vec<u8>> = m
        .iter()
        .map(|(k, (_, d))| (k.clone(), d.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = m
        .iter()
        .map(|(k, (s, _))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), &bytes[k])
                    .unwrap(),
            )
        })
        .collect();
    let data = safetensors::serialize(views, None).unwrap();
    let config = ClipConfig::from_file(&dir.join("config.json")).unwrap();
    let w = Weights::from_bytes(Path::new("edited.safetensors"), &data).unwrap();
    ClipModel::<B>::from_weights(&config, w, &Default::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_checkpoints_name_the_problem() {
    let missing = load_error(|m| {
        m.remove("vision_model.encoder.layers.1.mlp.fc2.bias");
    });
    assert_eq!(
        missing,
        "edited.safetensors: missing tensor `vision_model.encoder.layers.1.mlp.fc2.bias` (checkpoint read with HuggingFace names)"
    );
    let extra = load_error(|m| {
        m.insert(
            "vision_model.extra_head.weight".into(),
            (vec![2], vec![0.0, 1.0]),
        );
    });
    assert_eq!(
        extra,
        "edited.safetensors: unexpected tensor(s) the model does not use: vision_model.extra_head.weight"
    );
    let shape = load_error(|m| {
        m.insert(
            "text_projection.weight".into(),
            (vec![16, 31], vec![0.0; 16 * 31]),
        );
    });
    assert_eq!(
        shape,
        "edited.safetensors: tensor `text_projection.weight` has shape [16, 31], the config needs [16, 32]"
    );

    let bytes = std::fs::read(fixtures().join("tiny-a/model.safetensors")).unwrap();
    let err = match Weights::from_bytes(Path::new("cut.safetensors"), &bytes[..bytes.len() / 2]) {
        Err(e) => e,
        Ok(_) => panic!("a truncated file loaded"),
    };
    assert!(matches!(err, ClipError::Weights { .. }));
    assert!(
        err.to_string().starts_with(
            "cut.safetensors: not a readable safetensors file (truncated or corrupt?)"
        ),
        "{err}"
    );
    let err = ClipModel::<B>::load(Path::new("/nonexistent"), &Default::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/model.safetensors:"),
        "{err}"
    );
}
