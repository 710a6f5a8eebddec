//! Video files through FFmpeg (feature `video`): frame counts and the frames a clip samples.
//! Far-apart frames are reached by seeking to the keyframe before them (containers with
//! timestamps: mp4, mkv, webm, ...) rather than by decoding the whole video; files without
//! usable timestamps are decoded front to back.

use std::collections::BTreeMap;
use std::path::Path;

use ffmpeg_next as ff;
use image::RgbImage;

use crate::VideoError;

/// Frames further ahead than this are reached by seeking.
const SEEK_GAP: usize = 48;

pub(crate) fn fail(path: &Path, what: &str, e: impl std::fmt::Display) -> VideoError {
    VideoError::Invalid(format!("{}: {what}: {e}", path.display()))
}

pub(crate) struct Opened {
    pub(crate) input: ff::format::context::Input,
    pub(crate) stream: usize,
    pub(crate) decoder: ff::decoder::Video,
    /// Frames per second, the stream's time base in seconds, and its first timestamp.
    pub(crate) fps: f64,
    tb: f64,
    start: i64,
    /// The container's frame count (0: it does not say).
    pub(crate) frames: i64,
}

fn open(path: &Path) -> Result<Opened, VideoError> {
    open_with(path, None)
}

/// Opens a video's best video stream; `threads`: the decoder's thread count (`None`: FFmpeg's
/// choice, one per core).
pub(crate) fn open_with(path: &Path, threads: Option<usize>) -> Result<Opened, VideoError> {
    ff::init().map_err(|e| fail(path, "initialising FFmpeg", e))?;
    // Errors are reported with the file's name; FFmpeg's own log would repeat them on stderr.
    ff::util::log::set_level(ff::util::log::Level::Quiet);
    let input = ff::format::input(path).map_err(|e| fail(path, "cannot open", e))?;
    let st = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| fail(path, "no video stream", "none"))?;
    let stream = st.index();
    let mut ctx = ff::codec::context::Context::from_parameters(st.parameters())
        .map_err(|e| fail(path, "codec parameters", e))?;
    if let Some(n) = threads {
        ctx.set_threading(ff::threading::Config::count(n));
    }
    let decoder = ctx
        .decoder()
        .video()
        .map_err(|e| fail(path, "no decoder for its codec", e))?;
    let rate = st.avg_frame_rate();
    let fps = if rate.denominator() != 0 {
        rate.numerator() as f64 / rate.denominator() as f64
    } else {
        0.0
    };
    let tb = st.time_base();
    let tb = tb.numerator() as f64 / tb.denominator().max(1) as f64;
    let start = if st.start_time() == ff::ffi::AV_NOPTS_VALUE {
        0
    } else {
        st.start_time()
    };
    let frames = st.frames();
    Ok(Opened {
        input,
        stream,
        decoder,
        fps,
        tb,
        start,
        frames,
    })
}

/// Decodes every remaining frame, calling `f(index_from_timestamp, frame)`; stops when `f`
/// returns false.
pub(crate) fn for_each_frame(
    o: &mut Opened,
    path: &Path,
    mut f: impl FnMut(Option<usize>, &ff::frame::Video) -> bool,
) -> Result<(), VideoError> {
    let mut frame = ff::frame::Video::empty();
    let index_of = |o: &Opened, ts: Option<i64>| -> Option<usize> {
        let ts = ts?;
        (o.fps > 0.0).then(|| (((ts - o.start) as f64 * o.tb * o.fps).round().max(0.0)) as usize)
    };
    let stream = o.stream;
    let mut packets = Vec::new();
    for (s, packet) in o.input.packets() {
        if s.index() == stream {
            packets.push(packet);
            break;
        }
    }
    loop {
        let packet = match packets.pop() {
            Some(p) => Some(p),
            None => {
                let mut next = None;
                for (s, p) in o.input.packets() {
                    if s.index() == stream {
                        next = Some(p);
                        break;
                    }
                }
                next
            }
        };
        match &packet {
            Some(p) => o
                .decoder
                .send_packet(p)
                .map_err(|e| fail(path, "decoding", e))?,
            None => {
                let _ = o.decoder.send_eof();
            }
        }
        while o.decoder.receive_frame(&mut frame).is_ok() {
            let idx = index_of(o, frame.timestamp());
            if !f(idx, &frame) {
                return Ok(());
            }
        }
        if packet.is_none() {
            return Ok(());
        }
    }
}

fn to_rgb(frame: &ff::frame::Video, path: &Path) -> Result<RgbImage, VideoError> {
    let (w, h) = (frame.width(), frame.height());
    let mut scaler = ff::software::scaling::Context::get(
        frame.format(),
        w,
        h,
        ff::format::Pixel::RGB24,
        w,
        h,
        ff::software::scaling::Flags::BILINEAR,
    )
    .map_err(|e| fail(path, "pixel conversion", e))?;
    let mut rgb = ff::frame::Video::empty();
    scaler
        .run(frame, &mut rgb)
        .map_err(|e| fail(path, "pixel conversion", e))?;
    let stride = rgb.stride(0);
    let data = rgb.data(0);
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h as usize {
        out.extend_from_slice(&data[y * stride..y * stride + w as usize * 3]);
    }
    Ok(RgbImage::from_raw(w, h, out).expect("w × h × 3 bytes"))
}

/// The first frame at or after `t` seconds of a stream at `r` frames per second.
pub fn frame_at(t: f64, r: f64) -> usize {
    (t * r - 1e-9).ceil().max(0.0) as usize
}

/// The frames `[start, end)` of a span of seconds of a video of `n` frames at `r` per second.
pub fn span_frames(span: [f64; 2], r: f64, n: usize) -> std::ops::Range<usize> {
    frame_at(span[0], r).min(n)..frame_at(span[1], r).min(n)
}

/// The frames of a segment (seconds `[start, end)`, ActivityNet's training instances) of a
/// video file; an error when the file gives no frame rate or the segment holds no frame.
pub fn segment(path: &Path, span: [f64; 2]) -> Result<std::ops::Range<usize>, VideoError> {
    let (r, n) = rate_and_count(path)?;
    if r <= 0.0 {
        return Err(VideoError::Invalid(format!(
            "{}: no frame rate, so the segment {:.2}–{:.2} s cannot be found",
            path.display(),
            span[0],
            span[1]
        )));
    }
    let frames = span_frames(span, r, n);
    if frames.is_empty() {
        return Err(VideoError::Invalid(format!(
            "{}: the segment {:.2}–{:.2} s holds no frame",
            path.display(),
            span[0],
            span[1]
        )));
    }
    Ok(frames)
}

/// A video file's frame rate (0 when it gives none) and its frame count as
/// [`frame_count`] gives it.
pub fn rate_and_count(path: &Path) -> Result<(f64, usize), VideoError> {
    let mut o = open(path)?;
    Ok((o.fps, count(&mut o, path)?))
}

/// Frames in a video file: the container's count, or (when it has none) a count by decoding.
pub fn frame_count(path: &Path) -> Result<usize, VideoError> {
    count(&mut open(path)?, path)
}

fn count(o: &mut Opened, path: &Path) -> Result<usize, VideoError> {
    if o.frames > 0 {
        return Ok(o.frames as usize);
    }
    let mut n = 0;
    for_each_frame(o, path, |_, _| {
        n += 1;
        true
    })?;
    if n == 0 {
        return Err(fail(path, "no decodable frames", "empty or truncated"));
    }
    Ok(n)
}

/// The frames `indices` (0-based, any order, repeats allowed) of a video file.
pub fn frames(path: &Path, indices: &[usize]) -> Result<Vec<RgbImage>, VideoError> {
    let mut wanted: Vec<usize> = indices.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut got: BTreeMap<usize, RgbImage> = BTreeMap::new();
    let mut o = open(path)?;
    let can_seek = o.fps > 0.0
        && !path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("avi"));
    let mut pos = 0usize; // next frame index a sequential decode would produce
    let mut k = 0;
    // Seeking pays while it lands past where decoding stands; once a keyframe interval proves
    // longer than the gaps (x264's default is 250 frames), decoding on is no slower.
    let mut seeking = can_seek;
    while k < wanted.len() {
        let target = wanted[k];
        let sought = seeking && target > pos + SEEK_GAP;
        if sought {
            // Seek (in AV_TIME_BASE µs) to the keyframe at or before the target.
            let ts = ((target as f64 / o.fps) * 1e6) as i64 + (o.start as f64 * o.tb * 1e6) as i64;
            o.input
                .seek(ts, ..ts)
                .map_err(|e| fail(path, "seeking", e))?;
            o.decoder.flush();
        }
        let mut seq = pos;
        let mut err = None;
        let mut reached = false;
        let mut landed = None;
        for_each_frame(&mut o, path, |idx, frame| {
            let i = if can_seek { idx.unwrap_or(seq) } else { seq };
            seq = i + 1;
            landed.get_or_insert(i);
            // Wanted frames at or before this one (a stream may skip an index) take it.
            if k < wanted.len() && wanted[k] <= i {
                match to_rgb(frame, path) {
                    Ok(img) => {
                        while k < wanted.len() && wanted[k] <= i {
                            got.insert(wanted[k], img.clone());
                            k += 1;
                        }
                    }
                    Err(e) => {
                        err = Some(e);
                        return false;
                    }
                }
            }
            // Stop to seek ahead — but not short of the frame this decode sought: the keyframe
            // before it may lie further back than the gap.
            let far = wanted
                .get(k)
                .is_some_and(|&w| w > i + SEEK_GAP && !(sought && w == target));
            if k >= wanted.len() || (seeking && far) {
                reached = true;
                return false;
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if sought && landed.is_some_and(|l| l < pos) {
            seeking = false;
        }
        pos = seq;
        if !reached && k < wanted.len() {
            return Err(fail(
                path,
                "frame out of range",
                format!("frame {} requested, the video ended at {pos}", wanted[k]),
            ));
        }
    }
    indices
        .iter()
        .map(|i| {
            got.get(i)
                .cloned()
                .ok_or_else(|| fail(path, "frame not decoded", i))
        })
        .collect()
}
