//! The synthetic world: procedurally drawn videos of a coloured shape doing something, whose
//! class names are captions ("a red circle moving left"). Deterministic by seed, any size and
//! length, no files. It is the data of tests, benchmarks and the quickstart, and its
//! compositional classes give a zero-shot protocol: hold out some (shape, colour, motion)
//! combinations from training and name them only at test time.

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

pub const SHAPES: &[&str] = &["circle", "square", "triangle", "cross"];
pub const COLOURS: &[(&str, [u8; 3])] = &[
    ("red", [220, 40, 40]),
    ("green", [40, 190, 60]),
    ("blue", [50, 80, 230]),
    ("yellow", [230, 210, 40]),
    ("magenta", [210, 50, 200]),
    ("cyan", [40, 200, 210]),
];
pub const MOTIONS: &[&str] = &[
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "growing",
    "shrinking",
];

/// One class: a (shape, colour, motion) combination, by index into the lists above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Combo {
    pub shape: usize,
    pub colour: usize,
    pub motion: usize,
}

impl Combo {
    /// The caption used as class name: "a red circle moving left".
    pub fn caption(&self) -> String {
        format!(
            "a {} {} {}",
            COLOURS[self.colour].0, SHAPES[self.shape], MOTIONS[self.motion]
        )
    }

    /// Every combination of the first `shapes` shapes, `colours` colours and `motions` motions.
    pub fn all(shapes: usize, colours: usize, motions: usize) -> Vec<Combo> {
        let mut v = Vec::new();
        for shape in 0..shapes.min(SHAPES.len()) {
            for colour in 0..colours.min(COLOURS.len()) {
                for motion in 0..motions.min(MOTIONS.len()) {
                    v.push(Combo {
                        shape,
                        colour,
                        motion,
                    });
                }
            }
        }
        v
    }
}

/// A compositional zero-shot split: `unseen` combinations (held out of training, named only at
/// test time) drawn with `seed` so that every shape, colour and motion of them still occurs in
/// some seen class. Returns (seen, unseen), each in the order of `combos`.
pub fn split_unseen(combos: &[Combo], unseen: usize, seed: u64) -> (Vec<Combo>, Vec<Combo>) {
    let mut order: Vec<usize> = (0..combos.len()).collect();
    let mut rng = rng(seed ^ 0x0005_EED0);
    rng.shuffle(&mut order);
    let mut held = vec![false; combos.len()];
    let mut n = 0;
    for &i in &order {
        if n == unseen {
            break;
        }
        held[i] = true;
        let c = combos[i];
        let covered =
            |f: &dyn Fn(&Combo) -> bool| combos.iter().zip(&held).any(|(o, h)| !h && f(o));
        if covered(&|o| o.shape == c.shape)
            && covered(&|o| o.colour == c.colour)
            && covered(&|o| o.motion == c.motion)
        {
            n += 1;
        } else {
            held[i] = false;
        }
    }
    let pick = |want: bool| {
        combos
            .iter()
            .zip(&held)
            .filter(|(_, h)| **h == want)
            .map(|(c, _)| *c)
            .collect()
    };
    (pick(false), pick(true))
}

/// The workspace's generator, as the data pipeline uses it.
pub type Rng = t4v_core::SplitMix64;

/// The data pipeline's generator for `seed` (its own stream: `seed` XOR a constant).
pub fn rng(seed: u64) -> Rng {
    Rng::new(seed ^ 0x243F_6A88_85A3_08D3)
}

/// Everything that varies between two videos of the same class.
#[derive(Clone, Debug)]
struct Scene {
    x0: f64,
    y0: f64,
    radius: f64,
    speed: f64,
    background: [u8; 3],
    noise_seed: u64,
}

/// Draws videos of one combination. `video` picks the instance; the same (combo, video, seed)
/// always gives the same pixels.
pub fn render(combo: Combo, video: u64, seed: u64, frames: usize, size: usize) -> Vec<RgbImage> {
    let all: Vec<usize> = (0..frames).collect();
    render_frames(combo, video, seed, frames, size, false, &all)
}

/// Faded copies of the shape where it was a moment before, oldest first: (offset in the
/// motion's progress, opacity). They make a single frame show which way the shape moves, as
/// motion blur does in real footage.
const TRAIL: &[(f64, f64)] = &[(0.6, 0.2), (0.45, 0.3), (0.3, 0.45), (0.15, 0.6)];

/// Frames `indices` of a video of `frames` frames (each frame is drawn on its own, so a clip
/// costs only its frames), with a motion trail when `trail`.
pub fn render_frames(
    combo: Combo,
    video: u64,
    seed: u64,
    frames: usize,
    size: usize,
    trail: bool,
    indices: &[usize],
) -> Vec<RgbImage> {
    let mut rng = rng(seed.wrapping_mul(0x100_0000_01B3)
        ^ video.wrapping_mul(0x9E37)
        ^ ((combo.shape * 100 + combo.colour * 10 + combo.motion) as u64) << 40);
    let s = size as f64;
    let scene = Scene {
        x0: s * (0.3 + 0.4 * rng.unit()),
        y0: s * (0.3 + 0.4 * rng.unit()),
        radius: s * (0.12 + 0.06 * rng.unit()),
        speed: s * (0.25 + 0.15 * rng.unit()),
        background: [
            (20.0 + 40.0 * rng.unit()) as u8,
            (20.0 + 40.0 * rng.unit()) as u8,
            (20.0 + 40.0 * rng.unit()) as u8,
        ],
        noise_seed: rng.next_u64(),
    };
    // Where the shape is, and how large, at progress p ∈ [-0.5, 0.5] (and before, for trails).
    let at = |p: f64| {
        let (mut x, mut y, mut r) = (scene.x0, scene.y0, scene.radius);
        match MOTIONS[combo.motion] {
            "moving left" => x -= scene.speed * p,
            "moving right" => x += scene.speed * p,
            "moving up" => y -= scene.speed * p,
            "moving down" => y += scene.speed * p,
            "growing" => r *= 1.0 + 0.9 * p,
            _ => r *= 1.0 - 0.9 * p,
        }
        Shape {
            x,
            y,
            r: r.max(1.0),
        }
    };
    indices
        .iter()
        .map(|&t| {
            let p = if frames > 1 {
                t as f64 / (frames - 1) as f64 - 0.5
            } else {
                0.0
            };
            let mut layers: Vec<(Shape, f64)> = Vec::new();
            if trail {
                layers.extend(TRAIL.iter().map(|&(dp, alpha)| (at(p - dp), alpha)));
            }
            layers.push((at(p), 1.0));
            draw(
                size,
                SHAPES[combo.shape],
                &layers,
                COLOURS[combo.colour].1,
                &scene,
                t as u64,
            )
        })
        .collect()
}

/// One drawing of the shape: centre and radius in pixels.
#[derive(Clone, Copy, Debug)]
struct Shape {
    x: f64,
    y: f64,
    r: f64,
}

impl Shape {
    fn contains(&self, shape: &str, px: u32, py: u32) -> bool {
        let (dx, dy, r) = (px as f64 + 0.5 - self.x, py as f64 + 0.5 - self.y, self.r);
        match shape {
            "circle" => dx * dx + dy * dy <= r * r,
            "square" => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
            "triangle" => dy <= r * 0.8 && dy >= -r && dx.abs() <= (dy + r) * 0.6,
            _ => (dx.abs() <= r * 0.3 && dy.abs() <= r) || (dy.abs() <= r * 0.3 && dx.abs() <= r),
        }
    }
}

/// The background, then each layer (oldest first) blended in at its opacity, then noise.
fn draw(
    size: usize,
    shape: &str,
    layers: &[(Shape, f64)],
    colour: [u8; 3],
    scene: &Scene,
    t: u64,
) -> RgbImage {
    let mut noise = rng(scene.noise_seed ^ t.wrapping_mul(0xD1B5_4A32_D192_ED03));
    RgbImage::from_fn(size as u32, size as u32, |px, py| {
        let mut base = scene.background.map(f64::from);
        for (s, alpha) in layers {
            if s.contains(shape, px, py) {
                for (b, c) in base.iter_mut().zip(colour) {
                    *b += alpha * (c as f64 - *b);
                }
            }
        }
        let n = (noise.unit() * 24.0) as i32 - 12;
        Rgb(base.map(|c| (c.round() as i32 + n).clamp(0, 255) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        let c = Combo {
            shape: 0,
            colour: 0,
            motion: 0,
        };
        assert_eq!(c.caption(), "a red circle moving left");
        let a = render(c, 3, 7, 4, 32);
        assert_eq!(a.len(), 4);
        assert_eq!(a[0].dimensions(), (32, 32));
        assert_eq!(a, render(c, 3, 7, 4, 32));
        assert_ne!(a, render(c, 4, 7, 4, 32));
        // The shape moves: its red mass drifts left from the first frame to the last.
        let centre_x = |img: &RgbImage| {
            let (mut sum, mut n) = (0.0, 0.0);
            for (x, _, p) in img.enumerate_pixels() {
                if p[0] > 150 && p[1] < 100 {
                    sum += x as f64;
                    n += 1.0;
                }
            }
            sum / n
        };
        assert!(centre_x(&a[3]) < centre_x(&a[0]) - 3.0);
        assert_eq!(Combo::all(4, 6, 6).len(), 144);
    }

    #[test]
    fn trails_follow_the_motion_and_frames_render_alone() {
        let left = Combo {
            shape: 0,
            colour: 0,
            motion: 0,
        };
        let all = render(left, 1, 2, 8, 48);
        // Any subset of frames, drawn alone, is the same pixels.
        assert_eq!(
            render_frames(left, 1, 2, 8, 48, false, &[5, 2]),
            vec![all[5].clone(), all[2].clone()]
        );
        // With a trail, the faded (reddish but not full red) pixels lie to the right of the
        // shape moving left: where it was.
        let frame = &render_frames(left, 1, 2, 8, 48, true, &[4])[0];
        let (mut solid, mut faded) = ((0.0, 0.0), (0.0, 0.0));
        for (x, _, p) in frame.enumerate_pixels() {
            let r = p[0] as f64 - p[1] as f64;
            if r > 150.0 {
                solid = (solid.0 + x as f64, solid.1 + 1.0);
            } else if r > 40.0 {
                faded = (faded.0 + x as f64, faded.1 + 1.0);
            }
        }
        assert!(faded.1 > 10.0, "a trail is drawn");
        assert!(faded.0 / faded.1 > solid.0 / solid.1 + 2.0);
        assert_ne!(frame, &all[4]);
    }

    #[test]
    fn unseen_combinations_keep_every_attribute_seen() {
        let all = Combo::all(4, 3, 4);
        let (seen, unseen) = split_unseen(&all, 12, 0);
        assert_eq!((seen.len(), unseen.len()), (36, 12));
        for u in &unseen {
            assert!(seen.iter().any(|s| s.shape == u.shape));
            assert!(seen.iter().any(|s| s.colour == u.colour));
            assert!(seen.iter().any(|s| s.motion == u.motion));
        }
        assert_eq!(split_unseen(&all, 12, 0).1, unseen);
        assert_ne!(split_unseen(&all, 12, 1).1, unseen);
    }
}

#[cfg(test)]
mod preview {
    /// `T4V_PREVIEW=dir cargo test -p t4v-video preview -- --ignored` writes a contact sheet
    /// (with motion trails when `T4V_PREVIEW_TRAIL` is set).
    #[test]
    #[ignore]
    fn write_preview() {
        let dir = std::path::PathBuf::from(std::env::var("T4V_PREVIEW").unwrap_or("/tmp".into()));
        let combos = super::Combo::all(4, 2, 6);
        let (size, frames) = (64u32, 4usize);
        let mut sheet = image::RgbImage::new(size * frames as u32, size * combos.len() as u32);
        for (row, c) in combos.iter().enumerate() {
            let all: Vec<usize> = (0..frames).collect();
            let trail = std::env::var("T4V_PREVIEW_TRAIL").is_ok();
            for (col, f) in super::render_frames(*c, 0, 0, frames, size as usize, trail, &all)
                .iter()
                .enumerate()
            {
                image::imageops::replace(
                    &mut sheet,
                    f,
                    (col as u32 * size) as i64,
                    (row as u32 * size) as i64,
                );
            }
        }
        sheet.save(dir.join("synthetic_preview.png")).unwrap();
    }
}
