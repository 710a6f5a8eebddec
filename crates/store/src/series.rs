//! Metric series packed as little-endian `(step: u64, value: f64)` pairs, sorted by step: 16
//! bytes a point, one key per series rather than one per point.

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    points: Vec<(u64, f64)>,
}

impl Series {
    pub fn decode(bytes: &[u8]) -> Series {
        let points = bytes
            .chunks_exact(16)
            .map(|c| {
                let step = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
                let value = f64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
                (step, value)
            })
            .collect();
        Series { points }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.points.len() * 16);
        for (s, v) in &self.points {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Inserts a point, replacing one at the same step.
    pub fn insert(&mut self, step: u64, value: f64) {
        match self.points.binary_search_by_key(&step, |p| p.0) {
            Ok(i) => self.points[i].1 = value,
            Err(i) => self.points.insert(i, (step, value)),
        }
    }

    pub fn points(&self) -> &[(u64, f64)] {
        &self.points
    }

    pub fn last(&self) -> Option<(u64, f64)> {
        self.points.last().copied()
    }

    pub fn steps(&self) -> Vec<u64> {
        self.points.iter().map(|p| p.0).collect()
    }

    /// Values as JSON (non-finite values as `"NaN"`, `"inf"`, `"-inf"`).
    pub fn values_json(&self) -> Vec<serde_json::Value> {
        self.points
            .iter()
            .map(|(_, v)| match v {
                v if v.is_nan() => "NaN".into(),
                v if v.is_infinite() => (if *v > 0.0 { "inf" } else { "-inf" }).into(),
                v => (*v).into(),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces_by_step() {
        let mut s = Series::default();
        s.insert(2, 0.5);
        s.insert(0, 1.0);
        s.insert(1, f64::NAN);
        s.insert(2, 0.25);
        let back = Series::decode(&s.encode());
        assert_eq!(back.steps(), vec![0, 1, 2]);
        assert_eq!(back.points()[2].1, 0.25);
        assert!(back.points()[1].1.is_nan());
        assert_eq!(s.encode().len(), 48);
    }
}
