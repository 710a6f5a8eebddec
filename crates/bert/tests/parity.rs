//! Parity of the sentence encoder with the reference stack: tiny random BERT and DistilBERT
//! against transformers (committed fixtures), and real all-MiniLM-L6-v2 against
//! sentence-transformers when its weights are present (`T4V_MINILM_DIR`; `.ci/run` fetches them).

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use serde_json::Value;
use t4v_bert::SentenceEncoder;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn load_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn sentences(v: &Value) -> Vec<String> {
    v["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Largest absolute difference between our embeddings and the reference rows.
fn max_diff(ours: Vec<f32>, want: &[Vec<f32>]) -> f32 {
    let d = want[0].len();
    assert_eq!(ours.len(), want.len() * d);
    want.iter()
        .flatten()
        .zip(&ours)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn check_tiny(name: &str) {
    let dir = fixtures().join(name);
    let r = load_json(&dir.join("reference.json"));
    let enc = SentenceEncoder::<Flex>::load(dir.to_str().unwrap(), &Default::default()).unwrap();
    let out = enc.embed(&sentences(&r)).unwrap();
    let diff = max_diff(out.into_data().to_vec().unwrap(), &rows(&r["mean_pooled"]));
    assert!(diff < 1e-5, "{name}: max |Δ| = {diff}");
}

#[test]
fn tiny_bert_matches_transformers() {
    check_tiny("tiny-bert");
}

#[test]
fn tiny_distilbert_matches_transformers() {
    check_tiny("tiny-distilbert");
}

#[test]
fn all_minilm_l6_v2_matches_sentence_transformers() {
    let Some(dir) = std::env::var_os("T4V_MINILM_DIR") else {
        eprintln!("skipped: set T4V_MINILM_DIR to the all-MiniLM-L6-v2 folder (.ci/run does)");
        return;
    };
    let r = load_json(&fixtures().join("minilm_reference.json"));
    let enc = SentenceEncoder::<Flex>::load(&dir.to_string_lossy(), &Default::default())
        .unwrap_or_else(|e| panic!("T4V_MINILM_DIR is set but the model does not load: {e}"));
    assert_eq!(enc.model.width(), 384);
    let e = enc.embed(&sentences(&r)).unwrap();
    let e = t4v_clip::normalize(e);
    let diff = max_diff(
        e.into_data().to_vec().unwrap(),
        &rows(&r["normalized_embeddings"]),
    );
    assert!(diff < 1e-4, "all-MiniLM-L6-v2: max |Δ| = {diff}");
    eprintln!("all-MiniLM-L6-v2: max |Δ| = {diff:.2e} over 16 sentences");
}

#[test]
fn bad_configs_are_named() {
    let d = std::env::temp_dir().join(format!("t4v-bert-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixtures().join("tiny-bert").join(f), d.join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(fixtures().join("tiny-bert/config.json")).unwrap();
    std::fs::write(
        d.join("config.json"),
        cfg.replace("\"bert\"", "\"roberta\""),
    )
    .unwrap();
    let err = SentenceEncoder::<Flex>::load(d.to_str().unwrap(), &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model_type `roberta`"), "{err}");
    std::fs::write(
        d.join("config.json"),
        cfg.replace("\"hidden_size\": 32", "\"hidden_size\": 48"),
    )
    .unwrap();
    let err = SentenceEncoder::<Flex>::load(d.to_str().unwrap(), &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("embeddings.word_embeddings.weight") && err.contains("[98, 48]"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
