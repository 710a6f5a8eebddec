//! Frame extraction (feature `video`), what `cargo xtask prepare` does to each video: decode it
//! once, pick the frames each target wants (all of them, a segment, or a resampled rate), resize
//! the shorter side and write them as JPEG files named by the dataset's pattern.
//!
//! Which frames a target gets is a rule of frame indices, so it holds for files without usable
//! timestamps (AVI) and a test can state it: source frame `i` is at `i / r` seconds (`r` the
//! stream's frame rate). A span `[t0, t1)` keeps the frames `ceil(t0·r) ≤ i < ceil(t1·r)`. At
//! `F` frames per second, output frame `k` (at `t0 + k/F`, while that is before `t1`) is source
//! frame `round((t0 + k/F)·r)`, and exists when that frame does.

use std::path::Path;

use ffmpeg_next as ff;

use crate::VideoError;
use crate::decode::{fail, for_each_frame, frame_at, open_with};
use crate::frames::FramePattern;
use crate::jpeg::{Encoder, Planes};

/// How frames are written.
#[derive(Clone, Debug)]
pub struct Options {
    /// The shorter side after resizing (the longer one keeps the aspect ratio, rounded to an even
    /// number); 0 keeps the size.
    pub short_side: u32,
    /// Resample to this many frames per second (`None`: every frame).
    pub fps: Option<f64>,
    /// JPEG quality, 1–100.
    pub quality: u8,
}

/// One folder of frames to write from a video.
pub struct Target<'a> {
    pub dir: &'a Path,
    /// Seconds of the video, `[start, end)`; `None`: all of it.
    pub span: Option<[f64; 2]>,
}

/// What one video gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Extracted {
    /// Frames written per target.
    pub frames: Vec<usize>,
    /// Frames decoded, and the stream's frame rate.
    pub decoded: usize,
    pub fps: f64,
    /// The written frames' size.
    pub width: u32,
    pub height: u32,
}

/// Where each target's frame picking stands.
struct Pick {
    first: usize,
    end: usize,
    /// Next output frame.
    k: usize,
    span: Option<[f64; 2]>,
}

impl Pick {
    fn new(span: Option<[f64; 2]>, r: f64) -> Pick {
        Pick {
            first: span.map_or(0, |s| frame_at(s[0], r)),
            end: span.map_or(usize::MAX, |s| frame_at(s[1], r)),
            k: 0,
            span,
        }
    }

    /// The source frame output `k` is, or `None` when `k` is past the target's end.
    fn source(&self, k: usize, r: f64, fps: Option<f64>) -> Option<usize> {
        match fps {
            None => {
                let i = self.first + k;
                (i < self.end).then_some(i)
            }
            Some(f) => {
                let t = self.span.map_or(0.0, |s| s[0]) + k as f64 / f;
                if self.span.is_some_and(|s| t >= s[1]) {
                    return None;
                }
                Some((t * r).round() as usize)
            }
        }
    }
}

/// The size `(w, h)` of a `w × h` frame whose shorter side becomes `short`.
pub fn resized(w: u32, h: u32, short: u32) -> (u32, u32) {
    if short == 0 || w == 0 || h == 0 {
        return (w, h);
    }
    let even = |x: f64| (((x / 2.0).round() as u32) * 2).max(2);
    if w <= h {
        (short, even(h as f64 * short as f64 / w as f64))
    } else {
        (even(w as f64 * short as f64 / h as f64), short)
    }
}

/// Decodes `video` once and writes each target's frames into its folder (which must exist),
/// named by `pattern`. A video that fails to decode, or decodes to fewer frames than its
/// container lists (a truncated file), is an error naming it; folders may then hold some frames.
pub fn extract(
    video: &Path,
    targets: &[Target],
    pattern: &FramePattern,
    opts: &Options,
    encoder: &mut Encoder,
) -> Result<Extracted, VideoError> {
    // One decoding thread: `prepare` runs one video per core.
    let mut o = open_with(video, Some(1))?;
    let r = o.fps;
    if r <= 0.0 && (opts.fps.is_some() || targets.iter().any(|t| t.span.is_some())) {
        return Err(fail(
            video,
            "no frame rate",
            "resampling and segments need the stream's frame rate",
        ));
    }
    let mut picks: Vec<Pick> = targets.iter().map(|t| Pick::new(t.span, r)).collect();
    // A resampled output just before a span's end may round up to the frame at the end.
    let last = picks
        .iter()
        .map(|p| p.end.saturating_add(opts.fps.is_some() as usize))
        .max()
        .unwrap_or(0);
    // The resizer, for the source format and size it was made for, and the size it makes.
    type Scaler = (
        ff::software::scaling::Context,
        (ff::format::Pixel, u32, u32),
        (u32, u32),
    );
    let mut scaler: Option<Scaler> = None;
    let mut scaled = ff::frame::Video::empty();
    let mut i = 0usize;
    let mut err = None;
    for_each_frame(&mut o, video, |_, frame| {
        if picks.iter().any(|p| p.source(p.k, r, opts.fps) == Some(i)) {
            let src = (frame.format(), frame.width(), frame.height());
            if scaler.as_ref().is_none_or(|(_, s, _)| *s != src) {
                let (w, h) = resized(src.1, src.2, opts.short_side);
                match ff::software::scaling::Context::get(
                    src.0,
                    src.1,
                    src.2,
                    ff::format::Pixel::YUVJ420P,
                    w,
                    h,
                    ff::software::scaling::Flags::BICUBIC,
                ) {
                    Ok(c) => scaler = Some((c, src, (w, h))),
                    Err(e) => {
                        err = Some(fail(video, "resizing", e));
                        return false;
                    }
                }
            }
            let (ctx, _, size) = scaler.as_mut().expect("made above");
            if let Err(e) = ctx.run(frame, &mut scaled) {
                err = Some(fail(video, "resizing", e));
                return false;
            }
            let planes = Planes {
                width: size.0,
                height: size.1,
                data: [scaled.data(0), scaled.data(1), scaled.data(2)],
                strides: [scaled.stride(0), scaled.stride(1), scaled.stride(2)],
            };
            let jpeg = match encoder.encode(&planes) {
                Ok(j) => j,
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            };
            for (p, t) in picks.iter_mut().zip(targets) {
                // A resampled rate above the source's repeats a frame.
                while p.source(p.k, r, opts.fps) == Some(i) {
                    let path = t.dir.join(pattern.name(p.k));
                    if let Err(source) = std::fs::write(&path, jpeg) {
                        err = Some(VideoError::Io { path, source });
                        return false;
                    }
                    p.k += 1;
                }
            }
        }
        i += 1;
        // Past every target's end: the rest need not be decoded.
        i < last
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if i == 0 {
        return Err(fail(video, "no decodable frames", "empty or truncated"));
    }
    if o.frames > 0 && i < last.min(o.frames as usize) {
        return Err(fail(
            video,
            "truncated",
            format!("{i} of the {} frames its container lists decode", o.frames),
        ));
    }
    let (width, height) = scaler.map_or((0, 0), |(_, _, size)| size);
    Ok(Extracted {
        frames: picks.iter().map(|p| p.k).collect(),
        decoded: i,
        fps: r,
        width,
        height,
    })
}

/// Frames [`extract`] writes for a video of `n` frames at `r` frames per second: the rule of the
/// module's doc, for a caller that knows `n` (e.g. from `ffprobe -count_frames`).
pub fn expected_frames(n: usize, r: f64, span: Option<[f64; 2]>, fps: Option<f64>) -> usize {
    let p = Pick::new(span, r);
    let mut k = 0;
    while p.source(k, r, fps).is_some_and(|i| i < n) {
        k += 1;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_the_picking_rule() {
        assert_eq!(resized(320, 240, 256), (342, 256));
        assert_eq!(resized(240, 320, 256), (256, 342));
        assert_eq!(resized(1280, 720, 320), (568, 320));
        assert_eq!(resized(640, 480, 0), (640, 480));
        // 30 fps, 100 frames: all of them; at 1 fps frames 0, 30, 60, 90; at 60 fps each twice
        // (the last output, frame round(199/2) = 100, does not exist).
        assert_eq!(expected_frames(100, 30.0, None, None), 100);
        assert_eq!(expected_frames(100, 30.0, None, Some(1.0)), 4);
        assert_eq!(expected_frames(100, 30.0, None, Some(60.0)), 199);
        // A segment [1.5 s, 2.5 s): frames 45..75, or at 1 fps the frames at 1.5 s and nothing
        // at 2.5 s.
        assert_eq!(expected_frames(100, 30.0, Some([1.5, 2.5]), None), 30);
        assert_eq!(expected_frames(100, 30.0, Some([1.5, 2.5]), Some(1.0)), 1);
        // A segment past the end is cut at the end.
        assert_eq!(expected_frames(100, 30.0, Some([3.0, 9.0]), None), 10);
    }
}
