//! The feature cache: frozen-encoder features of a dataset split, computed once and reused by
//! every run that needs them (LDA and class-mean inits, zero-shot evaluation, linear probes).
//!
//! A cache file is `results/cache/features-<key>.safetensors`, where `key` hashes everything
//! that determines the features (weights, dataset, split, sampling, views, input size). It
//! holds `features` `[N, T, D]` (per frame) and `labels` `[N]`, with the determinants in its
//! metadata. Files are written to a temporary name and renamed, so a crash never leaves a
//! half-written cache under the real name; a file that is corrupt anyway (or was made for other
//! determinants) is reported and rebuilt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// Cached features of one split.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// `[N, T, D]`, row-major.
    pub data: Vec<f32>,
    pub shape: [usize; 3],
    pub labels: Vec<usize>,
}

/// Why a cache file was not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The cache key of a set of determinants (a JSON map; key order does not matter).
pub fn key(determinants: &Value) -> String {
    blake3::hash(determinants.to_string().as_bytes()).to_hex()[..24].to_string()
}

pub fn path(cache_dir: &Path, determinants: &Value) -> PathBuf {
    cache_dir.join(format!("features-{}.safetensors", key(determinants)))
}

/// Writes a cache file atomically.
pub fn write(cache_dir: &Path, determinants: &Value, f: &Features) -> Result<PathBuf, CacheError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CacheError::Io { path, source }
    };
    std::fs::create_dir_all(cache_dir).map_err(io(cache_dir))?;
    let target = path(cache_dir, determinants);
    let tmp = target.with_extension(format!("tmp-{}", std::process::id()));
    let feats: Vec<u8> = f.data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let labels: Vec<u8> = f
        .labels
        .iter()
        .flat_map(|&l| (l as i64).to_le_bytes())
        .collect();
    let views = vec![
        (
            "features".to_string(),
            safetensors::tensor::TensorView::new(Dtype::F32, f.shape.to_vec(), &feats)
                .expect("sizes agree"),
        ),
        (
            "labels".to_string(),
            safetensors::tensor::TensorView::new(Dtype::I64, vec![f.labels.len()], &labels)
                .expect("sizes agree"),
        ),
    ];
    // The checksum of the tensors' bytes: a flipped byte in a feature still parses.
    let sum = checksum(&feats, &labels);
    let meta: HashMap<String, String> = [
        ("determinants".to_string(), determinants.to_string()),
        ("blake3".to_string(), sum),
    ]
    .into();
    safetensors::serialize_to_file(views, Some(meta), &tmp).map_err(|e| CacheError::Invalid {
        path: tmp.clone(),
        message: e.to_string(),
    })?;
    t4v_fault::point("cache.partial");
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    remove_strays(&target);
    Ok(target)
}

/// Removes the temporary files of `target` that killed writers left (their names end in another
/// process's id; a writer alive now has its own name and its rename does not need the file).
fn remove_strays(target: &Path) {
    let (Some(dir), Some(stem)) = (target.parent(), target.file_stem()) else {
        return;
    };
    let prefix = format!("{}.tmp-", stem.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(&prefix)
            && pid.parse::<u32>().is_ok_and(|p| p != std::process::id())
            && !std::path::Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Reads the cache for `determinants`: `Ok(None)` when there is none, `Err` when the file is
/// unusable (the caller rebuilds it).
pub fn read(cache_dir: &Path, determinants: &Value) -> Result<Option<Features>, CacheError> {
    let p = path(cache_dir, determinants);
    if !p.exists() {
        return Ok(None);
    }
    let (stored, features) = load(&p)?;
    if stored.as_ref() != Some(determinants) {
        return Err(CacheError::Invalid {
            path: p,
            message: "made for other determinants".into(),
        });
    }
    Ok(Some(features))
}

fn checksum(features: &[u8], labels: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(features);
    h.update(labels);
    h.finalize().to_hex().to_string()
}

/// Reads a cache file: the determinants it was made for, and its features.
pub fn load(p: &Path) -> Result<(Option<Value>, Features), CacheError> {
    let bad = |message: String| CacheError::Invalid {
        path: p.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(p).map_err(|source| CacheError::Io {
        path: p.to_path_buf(),
        source,
    })?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
    let stored: Option<Value> = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("determinants"))
        .and_then(|s| serde_json::from_str(s).ok());
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
    let f = st
        .tensor("features")
        .map_err(|e| bad(format!("no `features`: {e}")))?;
    let l = st
        .tensor("labels")
        .map_err(|e| bad(format!("no `labels`: {e}")))?;
    let shape: [usize; 3] = f.shape().try_into().map_err(|_| {
        bad(format!(
            "`features` has shape {:?}, expected [N, T, D]",
            f.shape()
        ))
    })?;
    if f.dtype() != Dtype::F32 || l.dtype() != Dtype::I64 || l.shape() != [shape[0]] {
        return Err(bad(
            "`features`/`labels` have the wrong type or do not match".into(),
        ));
    }
    // (Caches written before checksums pass unchecked.)
    if let Some(sum) = meta.metadata().as_ref().and_then(|m| m.get("blake3"))
        && *sum != checksum(f.data(), l.data())
    {
        return Err(bad(
            "its tensors do not match the checksum saved with them (damaged)".into(),
        ));
    }
    let data = f
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let labels = l
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
        .collect();
    Ok((
        stored,
        Features {
            data,
            shape,
            labels,
        },
    ))
}

/// The determinants as a canonical JSON map.
pub fn determinants(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<serde_json::Map<_, _>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_mismatch_and_corruption() {
        let d = tempfile::tempdir().unwrap();
        let det = json!({"weights": "abc", "dataset": "synthetic", "split": "train", "frames": 8});
        assert!(read(d.path(), &det).unwrap().is_none());
        let f = Features {
            data: (0..24).map(|x| x as f32).collect(),
            shape: [2, 3, 4],
            labels: vec![1, 0],
        };
        let p = write(d.path(), &det, &f).unwrap();
        assert_eq!(read(d.path(), &det).unwrap().unwrap(), f);
        let reordered: Value = serde_json::from_str(
            r#"{"split": "train", "frames": 8, "dataset": "synthetic", "weights": "abc"}"#,
        )
        .unwrap();
        assert_eq!(path(d.path(), &reordered), p);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let err = read(d.path(), &det).unwrap_err().to_string();
        assert!(err.starts_with(&p.display().to_string()), "{err}");
        // A flipped bit in a feature still parses as a safetensors file; its checksum does not
        // match.
        write(d.path(), &det, &f).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 20] ^= 0x10;
        std::fs::write(&p, &bytes).unwrap();
        let err = read(d.path(), &det).unwrap_err().to_string();
        assert!(
            err.starts_with(&p.display().to_string()) && err.contains("checksum"),
            "{err}"
        );
        // What a writer killed before its rename left is removed by the next write.
        std::fs::write(p.with_extension("tmp-999999999"), b"partial").unwrap();
        write(d.path(), &det, &f).unwrap();
        assert!(read(d.path(), &det).unwrap().is_some());
        assert!(
            std::fs::read_dir(d.path()).unwrap().count() == 1,
            "no temporary files left"
        );
        t4v_fault::record(
            "Damaged files",
            "feature cache: cut short; one bit of a feature flipped; a killed writer's temporary file",
            3,
            "each an error naming the file (the features run rebuilds it), the stray removed by the next write",
        );
    }
}
