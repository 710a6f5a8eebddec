//! Which frames a clip is made of, exactly as the reference samples them (REFERENCE.md §1.2).
//! Frames are 0-based here; the reference adds its `index_bias` of 1 when it names files.

/// Training (TSN): one frame at a random offset in each of T equal segments. With N ≤ T, all
/// N frames plus T − N random extra indices, sorted. `rand(k)` draws uniformly from `0..k`.
pub fn train(n: usize, t: usize, mut rand: impl FnMut(usize) -> usize) -> Vec<usize> {
    assert!(n > 0 && t > 0, "a clip needs frames: n = {n}, t = {t}");
    if n <= t {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.extend((0..t - n).map(|_| rand(n)));
        idx.sort_unstable();
        return idx;
    }
    let ticks: Vec<usize> = (0..=t).map(|i| i * n / t).collect();
    (0..t)
        .map(|i| ticks[i] + rand(ticks[i + 1] - ticks[i]))
        .collect()
}

/// Validation during training: the start of each segment, ⌊i·N/T⌋ (with N < T some frames
/// repeat).
pub fn val(n: usize, t: usize) -> Vec<usize> {
    assert!(n > 0 && t > 0, "a clip needs frames: n = {n}, t = {t}");
    (0..t).map(|i| i * n / t).collect()
}

/// Test with C clips: tick = N/T; clip starts = `np.linspace(0, tick − 1, C, dtype=int)`
/// (numpy ≥ 1.20 floors, so with N < T a start can be −1); frame = ⌊start + tick·i⌋ mod N, with
/// Python's non-negative modulo. C = 1 gives [`val`].
pub fn test(n: usize, t: usize, clips: usize) -> Vec<Vec<usize>> {
    assert!(
        n > 0 && t > 0 && clips > 0,
        "n = {n}, t = {t}, clips = {clips}"
    );
    let tick = n as f64 / t as f64;
    linspace_int(0.0, tick - 1.0, clips)
        .into_iter()
        .map(|start| {
            (0..t)
                .map(|i| {
                    ((start as f64 + tick * i as f64).floor() as i64).rem_euclid(n as i64) as usize
                })
                .collect()
        })
        .collect()
}

/// `np.linspace(a, b, num, dtype=int)`: evenly spaced, floored.
fn linspace_int(a: f64, b: f64, num: usize) -> Vec<i64> {
    if num == 1 {
        return vec![a as i64];
    }
    let step = (b - a) / (num - 1) as f64;
    (0..num)
        .map(|i| {
            let v = if i == num - 1 { b } else { a + step * i as f64 };
            v.floor() as i64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_cases() {
        // (N, T, C) → expected indices, computed with the reference's formulas in numpy.
        assert_eq!(val(300, 8), vec![0, 37, 75, 112, 150, 187, 225, 262]);
        assert_eq!(val(10, 8), vec![0, 1, 2, 3, 5, 6, 7, 8]);
        assert_eq!(val(5, 8), vec![0, 0, 1, 1, 2, 3, 3, 4]);
        assert_eq!(test(300, 8, 1), vec![val(300, 8)]);
        assert_eq!(
            test(300, 8, 4),
            vec![
                vec![0, 37, 75, 112, 150, 187, 225, 262],
                vec![12, 49, 87, 124, 162, 199, 237, 274],
                vec![24, 61, 99, 136, 174, 211, 249, 286],
                vec![36, 73, 111, 148, 186, 223, 261, 298],
            ]
        );
        // N < T: tick < 1, and linspace(0, tick − 1 < 0) floors to −1.
        assert_eq!(
            test(5, 8, 2),
            vec![vec![0, 0, 1, 1, 2, 3, 3, 4], vec![4, 4, 0, 0, 1, 2, 2, 3]]
        );
        assert_eq!(
            test(7, 8, 3),
            vec![
                vec![0, 0, 1, 2, 3, 4, 5, 6],
                vec![6, 6, 0, 1, 2, 3, 4, 5],
                vec![6, 6, 0, 1, 2, 3, 4, 5]
            ]
        );
        assert_eq!(&test(19796, 16, 4)[1][..5], &[412, 1649, 2886, 4123, 5361]);
        // Training: segment starts plus the drawn offsets, and the N ≤ T rule.
        assert_eq!(
            train(300, 8, |k| k - 1),
            vec![36, 74, 111, 149, 186, 224, 261, 299]
        );
        assert_eq!(train(300, 8, |_| 0), val(300, 8));
        assert_eq!(train(3, 5, |_| 1), vec![0, 1, 1, 1, 2]);
    }
}
