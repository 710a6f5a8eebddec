//! Evaluation protocols: few-shot subsets and the zero-shot class splits.

use std::collections::BTreeMap;

use crate::numpy_legacy::{Mt19937, permutation};
use crate::{Video, VideoError};

/// Draws of the half-class zero-shot protocol (UCF-101, HMDB-51, ActivityNet).
pub const HALF_CLASS_DRAWS: u32 = 10;

/// The classes evaluated in draw `seed` of the half-class protocol: the first ⌊C/2⌋ entries of
/// `np.random.seed(seed); np.random.permutation(C)`, in permutation order.
pub fn half_classes(num_classes: usize, seed: u32) -> Vec<usize> {
    let mut p = permutation(seed, num_classes);
    p.truncate(num_classes / 2);
    p
}

/// Restricts videos to `classes` and relabels them 0..classes.len() in the given order.
pub fn restrict(videos: &[Video], classes: &[usize]) -> Vec<Video> {
    let index: BTreeMap<usize, usize> = classes.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    videos
        .iter()
        .filter_map(|v| {
            index.get(&v.label).map(|&l| Video {
                label: l,
                ..v.clone()
            })
        })
        .collect()
}

/// K videos per class, all classes ("all-way K-shot"), drawn with `seed`. Deterministic: the
/// same (videos, K, seed) always gives the same subset. (The reference draws its few-shot
/// subsets unseeded and per GPU rank, so no port can reproduce its exact subsets.)
pub fn few_shot(
    videos: &[Video],
    num_classes: usize,
    k: usize,
    seed: u32,
) -> Result<Vec<Video>, VideoError> {
    let mut by_class: Vec<Vec<&Video>> = vec![Vec::new(); num_classes];
    for v in videos {
        by_class
            .get_mut(v.label)
            .ok_or_else(|| {
                VideoError::Invalid(format!(
                    "{}:{}: label {} out of range for {num_classes} classes",
                    v.source.display(),
                    v.line,
                    v.label
                ))
            })?
            .push(v);
    }
    let mut rng = Mt19937::new(seed);
    let mut out = Vec::with_capacity(num_classes * k);
    for (c, list) in by_class.iter_mut().enumerate() {
        if list.len() < k {
            return Err(VideoError::Invalid(format!(
                "few-shot K = {k}: class {c} has only {} video(s) in this split",
                list.len()
            )));
        }
        for i in (1..list.len()).rev() {
            let j = rng.interval(i as u32) as usize;
            list.swap(i, j);
        }
        out.extend(list[..k].iter().map(|v| (*v).clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn video(label: usize, i: usize) -> Video {
        Video {
            span: None,
            path: PathBuf::from(format!("c{label}/v{i}")),
            label,
            frames: Some(10),
            source: PathBuf::from("list.txt"),
            line: i + 1,
        }
    }

    #[test]
    fn half_classes_follow_numpy() {
        // Rows of the numpy oracle (np.random.seed(s); np.random.permutation(C)[:C//2]).
        assert_eq!(
            &half_classes(101, 0)[..10],
            &[26, 86, 2, 55, 75, 94, 16, 73, 54, 96]
        );
        assert_eq!(half_classes(101, 0).len(), 50);
        assert_eq!(&half_classes(101, 1)[..6], &[94, 78, 17, 100, 36, 85]);
    }

    #[test]
    fn few_shot_is_seeded_and_balanced() {
        let videos: Vec<Video> = (0..30).map(|i| video(i % 3, i)).collect();
        let a = few_shot(&videos, 3, 2, 7).unwrap();
        assert_eq!(a.len(), 6);
        for c in 0..3 {
            assert_eq!(a.iter().filter(|v| v.label == c).count(), 2);
        }
        assert_eq!(a, few_shot(&videos, 3, 2, 7).unwrap());
        assert_ne!(a, few_shot(&videos, 3, 2, 8).unwrap());
        let err = few_shot(&videos, 3, 11, 0).unwrap_err().to_string();
        assert_eq!(
            err,
            "few-shot K = 11: class 0 has only 10 video(s) in this split"
        );
        let r = restrict(&videos, &[2, 0]);
        assert_eq!(r.len(), 20);
        assert!(
            r.iter().all(
                |v| (v.path.to_string_lossy().starts_with("c2") && v.label == 0) || v.label == 1
            )
        );
    }
}
