//! The reference's published results as data (`experiments/reference/`, embedded at build
//! time), and which of them a run is to be held against: the same dataset, backbone, frames and
//! views. `table` and `figure` declarations with `reference: true` use it.

use std::collections::BTreeMap;

static PUBLISHED: &str = include_str!("../../../experiments/reference/published.csv");
static CURVES: &str = include_str!("../../../experiments/reference/val_curves.csv");

/// What makes a run comparable with a published number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub dataset: String,
    pub arch: String,
    pub frames: u32,
    /// Views at test time (1 × 1 for a `train` run's single-view validation).
    pub crops: u32,
    pub clips: u32,
}

/// The reference's name of a backbone (`ViT-B/16`) from ours (the OpenAI checkpoint's hub id, a
/// folder named after it, or the reference's own name).
pub fn arch(backbone: &str) -> Option<&'static str> {
    let b = backbone.to_ascii_lowercase().replace('_', "-");
    [
        ("vit-large-patch14-336", "ViT-L/14-336"),
        ("vit-l/14-336", "ViT-L/14-336"),
        ("vit-large-patch14", "ViT-L/14"),
        ("vit-l/14", "ViT-L/14"),
        ("vit-base-patch16", "ViT-B/16"),
        ("vit-b/16", "ViT-B/16"),
        ("vit-base-patch32", "ViT-B/32"),
        ("vit-b/32", "ViT-B/32"),
    ]
    .into_iter()
    .find(|(pat, _)| b.contains(pat))
    .map(|(_, a)| a)
}

/// The key of a run from its flattened spec and kind: an `eval` run tests with its
/// `eval.crops × eval.clips` views, every other kind validates single-view.
pub fn key(flat: &BTreeMap<String, String>, kind: &str) -> Option<Key> {
    let num = |f: &str, d: u32| flat.get(f).map_or(Some(d), |v| v.parse().ok());
    let (crops, clips) = if kind == "eval" {
        (num("eval.crops", 1)?, num("eval.clips", 1)?)
    } else {
        (1, 1)
    };
    Some(Key {
        dataset: flat.get("data.dataset")?.clone(),
        arch: arch(flat.get("model.backbone")?)?.to_string(),
        frames: num("model.frames", 8)?,
        crops,
        clips,
    })
}

fn rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').collect())
}

/// The published value of `metric` for `key`, and its source.
pub fn published(key: &Key, metric: &str) -> Option<(f64, &'static str)> {
    rows(PUBLISHED).find_map(|f| {
        let matches = f[0] == key.dataset
            && f[1] == key.arch
            && f[2].parse() == Ok(key.frames)
            && f[3].parse() == Ok(key.crops)
            && f[4].parse() == Ok(key.clips)
            && f[5] == metric;
        matches.then(|| (f[6].parse().expect("published values are numbers"), f[7]))
    })
}

/// The released log's per-epoch single-view validation of `key`'s training (`val/top1` or
/// `val/top5`), `(epoch, value)`.
pub fn curve(key: &Key, metric: &str) -> Option<Vec<(u64, f64)>> {
    let col = match metric {
        "val/top1" => 4,
        "val/top5" => 5,
        _ => return None,
    };
    let points: Vec<(u64, f64)> = rows(CURVES)
        .filter(|f| f[0] == key.dataset && f[1] == key.arch && f[2].parse() == Ok(key.frames))
        .map(|f| {
            (
                f[3].parse().expect("epochs are integers"),
                f[col].parse().expect("values are numbers"),
            )
        })
        .collect();
    (!points.is_empty()).then_some(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn runs_find_their_published_rows() {
        let run = flat(&[
            ("data.dataset", "k400"),
            ("model.backbone", "openai/clip-vit-base-patch16"),
            ("model.frames", "8"),
            ("eval.crops", "3"),
            ("eval.clips", "4"),
        ]);
        let k = key(&run, "eval").unwrap();
        assert_eq!(published(&k, "test/top1"), Some((82.9, "README model zoo")));
        let k = key(&run, "train").unwrap();
        assert_eq!((k.crops, k.clips), (1, 1));
        assert_eq!(published(&k, "val/top1").unwrap().0, 81.40);
        let c = curve(&k, "val/top1").unwrap();
        assert_eq!(c.len(), 30);
        assert_eq!(c.last().unwrap().0, 30);
        assert_eq!(
            arch("/models/clip-vit-large-patch14-336"),
            Some("ViT-L/14-336")
        );
        assert_eq!(arch("/tmp/tiny-model"), None);
        // Every published row parses and names a known backbone.
        for f in rows(PUBLISHED) {
            assert_eq!(f.len(), 8, "{f:?}");
            assert!(arch(f[1]).is_some(), "{f:?}");
            f[6].parse::<f64>().unwrap();
        }
    }
}
