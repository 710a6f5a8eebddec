//! Spatial pipeline (REFERENCE.md §1.2): training clips get a shorter-side resize, an
//! Inception-style random resized crop, a horizontal flip and random grayscale, with the same
//! random parameters for every frame of the clip; evaluation clips a resize and a centre crop
//! (or three crops for multi-view). Then CLIP's mean/std normalisation.

use std::cell::RefCell;

use fast_image_resize as fr;
use image::RgbImage;
use image::imageops;

use crate::synthetic::Rng;

pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
// The reference values, written to f32 precision.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Training augmentation parameters (the reference's defaults for 224² input).
#[derive(Clone, Debug)]
pub struct TrainAugment {
    /// Shorter side after the first resize (256; 336 for 336² models).
    pub resize: u32,
    /// Output side (224 or 336).
    pub size: u32,
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
    pub flip: f64,
    pub grayscale: f64,
}

impl Default for TrainAugment {
    fn default() -> Self {
        Self {
            resize: 256,
            size: 224,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip: 0.5,
            grayscale: 0.2,
        }
    }
}

thread_local! {
    static RESIZER: RefCell<fr::Resizer> = RefCell::new(fr::Resizer::new());
}

/// Resizes (a crop of) `img` to `w × h` with SIMD convolution; like PIL, the kernel widens
/// when downscaling (antialiasing).
fn resize_to(
    img: &RgbImage,
    crop: Option<(u32, u32, u32, u32)>,
    w: u32,
    h: u32,
    filter: fr::FilterType,
) -> RgbImage {
    let mut dst = RgbImage::new(w, h);
    let mut opts = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(filter));
    if let Some((x, y, cw, ch)) = crop {
        opts = opts.crop(x as f64, y as f64, cw as f64, ch as f64);
    }
    RESIZER
        .with(|r| r.borrow_mut().resize(img, &mut dst, &opts))
        .expect("RGB to RGB resize");
    dst
}

/// Resizes so the shorter side is `side` (bicubic, as the reference).
pub fn resize_shorter(img: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w.min(h) == side {
        return img.clone();
    }
    let (nw, nh) = if w <= h {
        (
            side,
            ((h as f64 * side as f64 / w as f64).round() as u32).max(1),
        )
    } else {
        (
            ((w as f64 * side as f64 / h as f64).round() as u32).max(1),
            side,
        )
    };
    resize_to(img, None, nw, nh, fr::FilterType::CatmullRom)
}

/// Inception crop: area U(scale), aspect U(ratio) (log-uniform would differ from the
/// reference, which draws it uniformly), w = round(√(A·r)), h = round(√(A/r)), sides swapped
/// with p = 0.5, 10 tries; fallback: the largest centred square-ish crop.
pub fn inception_crop(w: u32, h: u32, aug: &TrainAugment, rng: &mut Rng) -> (u32, u32, u32, u32) {
    let area = (w * h) as f64;
    for _ in 0..10 {
        let a = area * (aug.scale.0 + (aug.scale.1 - aug.scale.0) * rng.unit());
        let r = aug.ratio.0 + (aug.ratio.1 - aug.ratio.0) * rng.unit();
        let (mut cw, mut ch) = ((a * r).sqrt().round() as u32, (a / r).sqrt().round() as u32);
        if rng.unit() < 0.5 {
            std::mem::swap(&mut cw, &mut ch);
        }
        if cw >= 1 && ch >= 1 && cw <= w && ch <= h {
            let x = rng.below((w - cw + 1) as usize) as u32;
            let y = rng.below((h - ch + 1) as usize) as u32;
            return (x, y, cw, ch);
        }
    }
    let s = w.min(h);
    ((w - s) / 2, (h - s) / 2, s, s)
}

/// [`resize_shorter`] of an owned frame: no copy when it already has the size.
fn resize_shorter_owned(img: RgbImage, side: u32) -> RgbImage {
    if img.width().min(img.height()) == side {
        img
    } else {
        resize_shorter(&img, side)
    }
}

/// A training clip: every frame with the same crop, flip and grayscale decision.
pub fn train_clip(frames: Vec<RgbImage>, aug: &TrainAugment, rng: &mut Rng) -> Vec<RgbImage> {
    let resized: Vec<RgbImage> = frames
        .into_iter()
        .map(|f| resize_shorter_owned(f, aug.resize))
        .collect();
    let (w, h) = resized[0].dimensions();
    let (x, y, cw, ch) = inception_crop(w, h, aug, rng);
    let flip = rng.unit() < aug.flip;
    let gray = rng.unit() < aug.grayscale;
    resized
        .iter()
        .map(|f| {
            let mut out = resize_to(
                f,
                Some((x, y, cw, ch)),
                aug.size,
                aug.size,
                fr::FilterType::Bilinear,
            );
            if flip {
                imageops::flip_horizontal_in_place(&mut out);
            }
            if gray {
                for p in out.pixels_mut() {
                    let l = (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
                        .round() as u8;
                    *p = image::Rgb([l, l, l]);
                }
            }
            out
        })
        .collect()
}

/// An evaluation clip: shorter side `resize`, centre crop `size`.
pub fn eval_clip(frames: &[RgbImage], resize: u32, size: u32) -> Vec<RgbImage> {
    frames
        .iter()
        .map(|f| {
            let r = resize_shorter(f, resize);
            let (w, h) = r.dimensions();
            imageops::crop_imm(&r, (w - size.min(w)) / 2, (h - size.min(h)) / 2, size, size)
                .to_image()
        })
        .collect()
}

/// The three crops of multi-view testing (left, right, centre), as the reference's
/// `GroupFullResSample`: steps (W − S)/4 and (H − S)/4, crops at (0, 2·hs), (4·ws, 2·hs),
/// (2·ws, 2·hs).
pub fn three_crops(frames: &[RgbImage], resize: u32, size: u32) -> [Vec<RgbImage>; 3] {
    let resized: Vec<RgbImage> = frames.iter().map(|f| resize_shorter(f, resize)).collect();
    let (w, h) = resized[0].dimensions();
    let (ws, hs) = (w.saturating_sub(size) / 4, h.saturating_sub(size) / 4);
    [(0, 2 * hs), (4 * ws, 2 * hs), (2 * ws, 2 * hs)].map(|(x, y)| {
        resized
            .iter()
            .map(|f| imageops::crop_imm(f, x, y, size, size).to_image())
            .collect()
    })
}

/// Frames → `[T, 3, H, W]` floats: pixel/255, minus CLIP's mean, over its std.
pub fn normalize(frames: &[RgbImage], out: &mut Vec<f32>) {
    let lut: [[f32; 256]; 3] = std::array::from_fn(|c| {
        std::array::from_fn(|v| (v as f32 / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c])
    });
    for f in frames {
        let (w, h) = f.dimensions();
        let plane = (w * h) as usize;
        let start = out.len();
        out.resize(start + 3 * plane, 0.0);
        let (r, rest) = out[start..].split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, p) in f.as_raw().chunks_exact(3).enumerate() {
            r[i] = lut[0][p[0] as usize];
            g[i] = lut[1][p[1] as usize];
            b[i] = lut[2][p[2] as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::rng;

    /// `cargo test --release -p t4v-video decode_cost -- --ignored --nocapture`: the ceiling
    /// the loader works under (JPEG decode of one 340×256 frame).
    #[test]
    #[ignore]
    fn decode_cost() {
        let img = RgbImage::from_fn(340, 256, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 3 % 256) as u8,
                ((x + y) % 256) as u8,
            ])
        });
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        let t = std::time::Instant::now();
        for _ in 0..200 {
            let _ = image::load_from_memory(&bytes).unwrap().into_rgb8();
        }
        eprintln!(
            "decode 340×256: {:.3} ms",
            t.elapsed().as_secs_f64() * 1000.0 / 200.0
        );
        let t = std::time::Instant::now();
        for _ in 0..200 {
            resize_to(
                &img,
                Some((10, 10, 200, 180)),
                224,
                224,
                fr::FilterType::Bilinear,
            );
        }
        eprintln!(
            "crop+resize to 224²: {:.3} ms",
            t.elapsed().as_secs_f64() * 1000.0 / 200.0
        );
    }

    fn frame(w: u32, h: u32, v: u8) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([v, (x % 256) as u8, (y % 256) as u8])
        })
    }

    #[test]
    fn shapes_and_shared_parameters() {
        let frames = vec![frame(340, 256, 10), frame(340, 256, 10)];
        assert_eq!(resize_shorter(&frames[0], 224).dimensions(), (298, 224));
        let aug = TrainAugment::default();
        let mut rng = rng(1);
        for _ in 0..20 {
            let clip = train_clip(frames.clone(), &aug, &mut rng);
            assert_eq!(clip.len(), 2);
            assert_eq!(clip[0].dimensions(), (224, 224));
            // Same crop, flip and grayscale for every frame: equal inputs stay equal.
            assert_eq!(clip[0], clip[1]);
        }
        let e = eval_clip(&frames, 256, 224);
        assert_eq!(e[0].dimensions(), (224, 224));
        assert_eq!(e[0].get_pixel(0, 0)[1], 58); // (340 − 224) / 2 = 58
        let [l, r, c] = three_crops(&frames, 256, 224);
        assert_eq!(
            (
                l[0].get_pixel(0, 0)[1],
                r[0].get_pixel(0, 0)[1],
                c[0].get_pixel(0, 0)[1]
            ),
            (0, 116, 58)
        );
        let mut out = Vec::new();
        normalize(&e[..1], &mut out);
        assert_eq!(out.len(), 3 * 224 * 224);
        assert!((out[0] - (10.0 / 255.0 - CLIP_MEAN[0]) / CLIP_STD[0]).abs() < 1e-6);
    }

    #[test]
    fn crops_stay_inside_and_vary() {
        let aug = TrainAugment::default();
        let mut rng = rng(3);
        let crops: Vec<_> = (0..200)
            .map(|_| inception_crop(340, 256, &aug, &mut rng))
            .collect();
        for (x, y, w, h) in &crops {
            assert!(x + w <= 340 && y + h <= 256 && *w > 0 && *h > 0);
        }
        let areas: Vec<u32> = crops.iter().map(|c| c.2 * c.3).collect();
        assert!(areas.iter().min().unwrap() * 4 < *areas.iter().max().unwrap());
    }
}
