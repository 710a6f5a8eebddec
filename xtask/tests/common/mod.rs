//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

pub mod media;
pub mod sweeps;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/clip/fixtures")
}

pub fn read(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == Dtype::F32)
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
        .collect()
}

pub fn write(path: &Path, tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) {
    let bytes: BTreeMap<&String, Vec<u8>> = tensors
        .iter()
        .map(|(k, (_, d))| (k, d.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (s, _))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), &bytes[k]).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// tiny-a with its vocabulary widened to CLIP's 49,408 tokens and the real tokenizer beside it.
pub fn model_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    let mut w = read(&fixtures().join("tiny-a/model.safetensors"));
    let (shape, data) = w
        .remove("text_model.embeddings.token_embedding.weight")
        .unwrap();
    let width = shape[1];
    let mut wide = data.clone();
    wide.extend((0..(49408 - shape[0]) * width).map(|i| ((i % 97) as f32 - 48.0) / 100.0));
    w.insert(
        "text_model.embeddings.token_embedding.weight".into(),
        (vec![49408, width], wide),
    );
    write(&dir.join("model.safetensors"), &w);
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("tiny-a/config.json")).unwrap(),
    )
    .unwrap();
    cfg["text_config"]["vocab_size"] = 49408.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(
        fixtures().join("tokenizer/tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    dir
}

/// The `state.json` of the first `train` checkpoint under `results/runs/`, once one is written.
pub fn first_checkpoint(results: &Path, secs: u64) -> PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let found = std::fs::read_dir(results.join("runs"))
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path().join("checkpoint/last/state.json"))
            .filter(|p| p.exists());
        if let Some(p) = found {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint was written"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
