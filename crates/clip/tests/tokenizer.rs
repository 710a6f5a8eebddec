//! The tokenizer against OpenAI's ids on 1,760 golden strings (`fixtures/make_tokenizer.py`).

use std::path::{Path, PathBuf};

use t4v_clip::ClipTokenizer;
use t4v_clip::tokenizer::ensemble_templates;
use t4v_core::plugin::fill_template;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tokenizer")
}

fn tokenizer() -> ClipTokenizer {
    ClipTokenizer::from_file(&dir().join("tokenizer.json"), 77).unwrap()
}

#[test]
fn ids_equal_openai_on_every_golden_string() {
    let tok = tokenizer();
    let golden = std::fs::read_to_string(dir().join("clip_tokenizer_golden.jsonl")).unwrap();
    let mut n = 0;
    for line in golden.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = row["text"].as_str().unwrap();
        let want: Vec<i64> = row["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(tok.ids(text).unwrap(), want, "{text:?}");
        n += 1;
    }
    assert_eq!(n, 1760);
}

#[test]
fn context_padding_and_truncation_follow_clip_tokenize() {
    let tok = tokenizer();
    let ids = tok.encode("a video of a person playing guitar").unwrap();
    assert_eq!(ids.len(), 77);
    assert_eq!(
        &ids[..9],
        &[49406, 320, 1455, 539, 320, 2533, 1629, 5084, 49407]
    );
    assert!(ids[9..].iter().all(|&i| i == 0));
    let long = tok.encode(&"guitar ".repeat(200)).unwrap();
    assert_eq!(long.len(), 77);
    assert_eq!(long[0], 49406);
    assert_eq!(long[76], 49407);
}

#[test]
fn templates() {
    assert_eq!(
        fill_template(t4v_clip::DEFAULT_TEMPLATE, "abseiling").unwrap(),
        "a video of a person abseiling."
    );
    let t = ensemble_templates();
    assert_eq!(t.len(), 28);
    assert_eq!(t[0], "a photo of {}");
    assert_eq!(t[27], "a demonstration of a person practicing {}");
}
