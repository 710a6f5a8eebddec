//! `embed` and `fetch` through the binary: the embed output equals the reference features of
//! the parity fixture, and offline use of a model that is not cached says so.

use std::collections::BTreeMap;
use std::process::Command;

mod common;
use common::{fixtures, model_dir, read, write};

#[test]
fn embed_writes_reference_image_features_and_consistent_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let io = read(&fixtures().join("tiny-a/io.safetensors"));
    let pixels: BTreeMap<String, _> =
        [("pixel_values".to_string(), io["pixel_values"].clone())].into();
    write(&tmp.path().join("pixels.safetensors"), &pixels);
    std::fs::write(
        tmp.path().join("texts.txt"),
        "a video of a person abseiling.\n\na video of a person juggling balls.\n",
    )
    .unwrap();
    let out = tmp.path().join("out.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["embed", "--model"])
        .arg(&dir)
        .args(["--text", "a video of a person playing guitar."])
        .arg("--texts")
        .arg(tmp.path().join("texts.txt"))
        .arg("--pixels")
        .arg(tmp.path().join("pixels.safetensors"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = read(&out);
    let (shape, image) = &got["image_features"];
    assert_eq!(shape, &io["image_features"].0);
    let diff = image
        .iter()
        .zip(&io["image_features"].1)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-4,
        "image_features differ from transformers by {diff}"
    );
    assert_eq!(got["text_features"].0, vec![3, 16]);
    // logits = exp(logit_scale) · cos(image, text)
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let (text, logits) = (&got["text_features"].1, &got["logits_per_image"].1);
    assert_eq!(got["logits_per_image"].0, vec![2, 3]);
    for i in 0..2 {
        for t in 0..3 {
            let (a, b) = (&image[i * 16..(i + 1) * 16], &text[t * 16..(t + 1) * 16]);
            let cos = a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (norm(a) * norm(b));
            assert!((logits[i * 3 + t] - 2.6592f32.exp() * cos).abs() < 1e-3);
        }
    }
    // Distinct prompts give distinct embeddings.
    assert!(
        text[..16]
            .iter()
            .zip(&text[16..32])
            .any(|(a, b)| (a - b).abs() > 1e-4)
    );
}

#[test]
fn wrong_pixels_and_offline_models_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let bad: BTreeMap<String, _> = [(
        "pixel_values".to_string(),
        (vec![1, 3, 8, 8], vec![0.0f32; 192]),
    )]
    .into();
    write(&tmp.path().join("bad.safetensors"), &bad);
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["embed", "--model"])
        .arg(&dir)
        .arg("--pixels")
        .arg(tmp.path().join("bad.safetensors"))
        .args(["--out", "/dev/null"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("bad.safetensors: `pixel_values` has shape [1, 3, 8, 8]; this model takes [M, 3, 32, 32]"), "{err}");

    for args in [
        &["fetch", "openai/clip-vit-base-patch32"][..],
        &[
            "embed",
            "--model",
            "openai/clip-vit-base-patch32",
            "--text",
            "x",
            "--out",
            "/dev/null",
        ],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HOME", tmp.path().join("hf"))
            .env_remove("HF_HUB_CACHE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            err.contains("model `openai/clip-vit-base-patch32` is not in the Hugging Face cache"),
            "{err}"
        );
        assert!(err.contains("HF_HUB_OFFLINE is set"), "{err}");
    }
}

#[test]
fn offline_use_reads_the_hugging_face_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let repo = tmp.path().join("hf/hub/models--t4v--tiny-a");
    let snap = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(dir.join(f), snap.join(f)).unwrap();
    }
    let out = tmp.path().join("o.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "embed",
            "--model",
            "t4v/tiny-a",
            "--text",
            "abseiling",
            "--out",
        ])
        .arg(&out)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", tmp.path().join("hf"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read(&out)["text_features"].0, vec![1, 16]);
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fetch", "t4v/tiny-a"])
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", tmp.path().join("hf"))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("snapshots/0123abcd/model.safetensors"));
}

/// The `text` classifier init on a real CLIP (tiny, full vocabulary): W's rows are the
/// normalised embeddings of the filled template, as `embed` computes them.
#[test]
fn text_init_uses_the_clip_text_tower() {
    use burn::backend::Flex;
    use t4v_core::plugin::{ClassifierInit, InitInputs};
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path());
    let clip = t4v_clip::Clip::<Flex>::load(dir.to_str().unwrap(), &Default::default()).unwrap();
    let names = vec!["abseiling".to_string(), "playing guitar".to_string()];
    let templates = vec![t4v_clip::DEFAULT_TEMPLATE.to_string()];
    let x = InitInputs {
        class_names: &names,
        embed_dim: 16,
        text: Some(&clip),
        templates: &templates,
        features: None,
        seed: 0,
        shrinkage: 0.1,
    };
    let w = t4v_inits::Text.init(&x).unwrap();
    let want = t4v_clip::normalize(
        clip.encode_texts(
            &["a video of a person playing guitar.".to_string()],
            false,
            8,
        )
        .unwrap(),
    );
    let row: Vec<f32> = w.slice([1..2, 0..16]).into_data().to_vec().unwrap();
    let want: Vec<f32> = want.into_data().to_vec().unwrap();
    let d = row
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-6, "{d}");
}
