//! Hostile checkpoints: a tiny CLIP checkpoint (the parity fixture `tiny-a`) with its
//! safetensors header mutated (its length field, and bytes of its JSON: names, dtypes, shapes,
//! offsets) or its `config.json` mutated, loads or fails with an error naming a file of it; it never
//! panics, and a header claiming a huge tensor is refused rather than allocated.
//! `PROPTEST_CASES` sets the number of cases.

use std::path::Path;

use burn::backend::Flex;
use proptest::prelude::*;
use t4v_clip::{ClipModel, Weights};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-a")
}

/// Loads the checkpoint in `dir` on the CPU, catching a panic; the error's text.
fn load(dir: &Path) -> Result<Result<(), String>, String> {
    let dir = dir.to_path_buf();
    std::panic::catch_unwind(move || {
        ClipModel::<Flex>::load(&dir, &Default::default())
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn check(dir: &Path, file: &str, what: &str) -> Result<(), TestCaseError> {
    match load(dir) {
        Err(panic) => Err(TestCaseError::fail(format!("{what}: panicked: {panic}"))),
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            // The file itself, or (a config that no longer fits its weights) the other one.
            let named = [file, "config.json", "model.safetensors"]
                .iter()
                .any(|f| e.contains(&dir.join(f).display().to_string()));
            prop_assert!(
                named,
                "{what}: an error that names no file of the checkpoint: {e}"
            );
            Ok(())
        }
    }
}

/// A copy of the fixture in a fresh folder.
fn copy() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture().join(f), d.path().join(f)).unwrap();
    }
    d
}

/// Bytes a JSON header is made of, to write over its own.
fn json_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"0123456789[]{},:\"-. eEFIUBD_".to_vec()),
        any::<u8>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(t4v_fault::cases(96)))]

    #[test]
    fn a_mutated_safetensors_header_loads_or_names_the_file(
        edits in prop::collection::vec((any::<usize>(), json_byte()), 1..6),
        length in prop::option::of(any::<u64>()),
    ) {
        let d = copy();
        let p = d.path().join("model.safetensors");
        let mut bytes = std::fs::read(&p).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (at, b) in &edits {
            bytes[8 + at % n] = *b;
        }
        if let Some(l) = length {
            bytes[..8].copy_from_slice(&l.to_le_bytes());
        }
        std::fs::write(&p, &bytes).unwrap();
        check(d.path(), "model.safetensors", &format!("{edits:?} {length:?}"))?;
        t4v_fault::tally(
            "Hostile input",
            "CLIP checkpoint: safetensors header mutated (length field, JSON bytes)",
            t4v_fault::cases(96),
            "loads, or an error naming model.safetensors; no panic, no huge allocation",
        );
    }

    #[test]
    fn a_mutated_config_loads_or_names_the_file(
        edits in prop::collection::vec((any::<usize>(), json_byte()), 1..6),
    ) {
        let d = copy();
        let p = d.path().join("config.json");
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        for (at, b) in &edits {
            bytes[at % n] = *b;
        }
        std::fs::write(&p, &bytes).unwrap();
        check(d.path(), "config.json", &format!("{edits:?}"))?;
        t4v_fault::tally(
            "Hostile input",
            "CLIP checkpoint: config.json mutated",
            t4v_fault::cases(96),
            "loads, or an error naming config.json; no panic",
        );
    }
}

/// A header whose one tensor claims 2⁴⁰ floats in a tiny file is refused by name.
#[test]
fn a_header_claiming_a_huge_tensor_is_refused() {
    let header =
        br#"{"w":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4398046511104]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 64]);
    let err = Weights::from_bytes(Path::new("huge.safetensors"), &bytes)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.starts_with("huge.safetensors: "), "{err}");
}

#[test]
fn the_fixture_loads() {
    assert_eq!(load(&fixture()), Ok(Ok(())));
}
