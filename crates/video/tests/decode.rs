//! Video files through FFmpeg, on clips the test makes with the ffmpeg command line (H.264 mp4,
//! VP9 webm, MPEG-4 avi): frame counts, and the pixels of known frames against the frames the
//! ffmpeg CLI extracts.
#![cfg(feature = "video")]

use std::path::Path;
use std::process::Command;

use t4v_video::decode::{frame_count, frames};

fn ffmpeg(args: &[&str]) {
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("the ffmpeg command line (Debian package `ffmpeg`) makes the test clips");
    assert!(
        o.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn reference_frame(video: &Path, n: usize, out: &Path) -> image::RgbImage {
    let sel = format!("select=eq(n\\,{n})");
    ffmpeg(&[
        "-i",
        video.to_str().unwrap(),
        "-vf",
        &sel,
        "-vframes",
        "1",
        "-sws_flags",
        "bilinear",
        out.to_str().unwrap(),
    ]);
    image::open(out).unwrap().into_rgb8()
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .sum::<f64>()
        / a.as_raw().len() as f64
}

#[test]
fn h264_vp9_and_mpeg4_clips() {
    let d = tempfile::tempdir().unwrap();
    let src = "testsrc2=duration=6:size=96x64:rate=25";
    let clips = [
        (
            "a.mp4",
            vec!["-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p"],
        ),
        (
            "b.webm",
            vec!["-c:v", "libvpx-vp9", "-g", "25", "-b:v", "400k"],
        ),
        ("c.avi", vec!["-c:v", "mpeg4", "-q:v", "3"]),
    ];
    for (name, codec) in &clips {
        let path = d.path().join(name);
        let mut args = vec!["-f", "lavfi", "-i", src];
        args.extend(codec.iter().copied());
        args.push(path.to_str().unwrap());
        ffmpeg(&args);
        assert_eq!(frame_count(&path).unwrap(), 150, "{name}");
        // Near frames, far frames (reached by seeking), repeats and any order.
        let want = [140usize, 3, 3, 75, 0, 149];
        let got = frames(&path, &want).unwrap();
        assert_eq!(got.len(), want.len());
        for (k, n) in want.iter().enumerate() {
            let r = reference_frame(&path, *n, &d.path().join(format!("{name}-{n}.png")));
            let diff = mean_abs_diff(&got[k], &r);
            assert!(
                diff < 2.0,
                "{name} frame {n}: mean |diff| {diff:.2} against the ffmpeg CLI"
            );
        }
        // Neighbouring frames differ (the decoder did not return one frame for all).
        assert!(mean_abs_diff(&got[1], &got[3]) > 1.0);
        assert!(
            frames(&path, &[150])
                .unwrap_err()
                .to_string()
                .contains("frame out of range")
        );
    }
    let broken = d.path().join("broken.mp4");
    let bytes = std::fs::read(d.path().join("a.mp4")).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let err = frame_count(&broken)
        .map(|_| ())
        .and_then(|_| frames(&broken, &[140]).map(|_| ()));
    assert!(err.is_err(), "a truncated video reads as complete");
    assert!(
        err.unwrap_err()
            .to_string()
            .starts_with(&broken.display().to_string())
    );
}

/// A segment of a video (ActivityNet's training instances) is a clip source of its own frames:
/// counted from the segment's first frame, cut at the video's end, an error when it holds none.
#[test]
fn segments_read_their_own_frames() {
    use t4v_video::Video;
    use t4v_video::loader::{ClipSource, VideoFileSource};
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("v_abc.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=3:size=64x48:rate=10",
        "-pix_fmt",
        "yuv420p",
        path.to_str().unwrap(),
    ]);
    let source = |span: [f64; 2]| VideoFileSource {
        root: d.path().to_path_buf(),
        videos: vec![Video {
            path: "v_abc.mp4".into(),
            label: 0,
            frames: None,
            span: Some(span),
            source: "anet.json".into(),
            line: 3,
        }],
    };
    let s = source([1.0, 2.0]);
    assert_eq!(s.frame_count(0).unwrap(), 10);
    let whole = frames(&path, &[10, 19]).unwrap();
    assert_eq!(s.frames(0, &[0, 9]).unwrap(), whole);
    assert_eq!(source([2.5, 9.0]).frame_count(0).unwrap(), 5);
    let err = source([5.0, 6.0]).frame_count(0).unwrap_err().to_string();
    assert!(
        err.starts_with("anet.json:3: ") && err.contains("the segment 5.00–6.00 s holds no frame"),
        "{err}"
    );
}

/// Frames far apart in a video whose keyframes are further apart still (x264's default interval
/// is 250 frames): each is reached, and equals the frame a front-to-back decode gives.
#[test]
fn far_frames_between_distant_keyframes() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("long-gop.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=12:size=64x48:rate=25",
        "-c:v",
        "libx264",
        "-g",
        "250",
        "-pix_fmt",
        "yuv420p",
        path.to_str().unwrap(),
    ]);
    assert_eq!(frame_count(&path).unwrap(), 300);
    let picks = [3, 100, 180, 260, 299];
    let got = frames(&path, &picks).unwrap();
    let all: Vec<usize> = (0..300).collect();
    let every = frames(&path, &all).unwrap();
    for (g, &p) in got.iter().zip(&picks) {
        assert_eq!(*g, every[p], "frame {p}");
    }
}
