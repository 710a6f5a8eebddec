//! JPEG frames straight from decoded YUV planes, through libjpeg-turbo's TurboJPEG API (feature
//! `video`; Debian's `libturbojpeg0-dev`). Handing it the 4:2:0 planes a video decodes to skips
//! the RGB round trip and the chroma subsampling a pixel-interleaved encoder does again, which is
//! most of what writing a frame costs.

use std::ffi::{CStr, c_char, c_int, c_uchar, c_ulong, c_void};

use crate::VideoError;

#[link(name = "turbojpeg")]
unsafe extern "C" {
    fn tjInitCompress() -> *mut c_void;
    fn tjDestroy(handle: *mut c_void) -> c_int;
    fn tjBufSize(width: c_int, height: c_int, subsamp: c_int) -> c_ulong;
    fn tjCompressFromYUVPlanes(
        handle: *mut c_void,
        planes: *const *const c_uchar,
        width: c_int,
        strides: *const c_int,
        height: c_int,
        subsamp: c_int,
        jpeg: *mut *mut c_uchar,
        size: *mut c_ulong,
        quality: c_int,
        flags: c_int,
    ) -> c_int;
    fn tjGetErrorStr2(handle: *mut c_void) -> *mut c_char;
}

/// `TJSAMP_420` in `turbojpeg.h`.
const SAMP_420: c_int = 2;
/// `TJFLAG_NOREALLOC`: write into the buffer we give, which `tjBufSize` sized for the worst case.
const NO_REALLOC: c_int = 1024;

/// One compressor, reused for every frame of a worker (it keeps its tables and buffers).
pub struct Encoder {
    handle: *mut c_void,
    buf: Vec<u8>,
    quality: c_int,
}

// SAFETY: a TurboJPEG handle is plain state owned by this value; it is used from one thread at
// a time (`&mut self`) and may move between threads.
unsafe impl Send for Encoder {}

/// Full-range (JFIF) 4:2:0 planes: Y at `width × height`, Cb and Cr at half size rounded up.
pub struct Planes<'a> {
    pub width: u32,
    pub height: u32,
    pub data: [&'a [u8]; 3],
    pub strides: [usize; 3],
}

impl Encoder {
    /// `quality` as libjpeg's 1–100.
    pub fn new(quality: u8) -> Result<Self, VideoError> {
        // SAFETY: no arguments; a null handle is an error.
        let handle = unsafe { tjInitCompress() };
        if handle.is_null() {
            return Err(VideoError::Invalid(
                "libjpeg-turbo: cannot create a compressor".into(),
            ));
        }
        Ok(Self {
            handle,
            buf: Vec::new(),
            quality: quality.clamp(1, 100) as c_int,
        })
    }

    /// The JPEG file of one frame.
    pub fn encode(&mut self, p: &Planes) -> Result<&[u8], VideoError> {
        let (w, h) = (p.width as usize, p.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        for (i, (rows, cols)) in [(h, w), (ch, cw), (ch, cw)].into_iter().enumerate() {
            if rows == 0
                || p.strides[i] < cols
                || p.data[i].len() < (rows - 1) * p.strides[i] + cols
            {
                return Err(VideoError::Invalid(format!(
                    "JPEG: plane {i} of a {w}×{h} frame is too small ({} bytes, stride {})",
                    p.data[i].len(),
                    p.strides[i]
                )));
            }
        }
        // SAFETY: pure function of its arguments.
        let cap = unsafe { tjBufSize(w as c_int, h as c_int, SAMP_420) } as usize;
        self.buf.resize(cap, 0);
        let planes = p.data.map(|d| d.as_ptr());
        let strides = p.strides.map(|s| s as c_int);
        let mut out = self.buf.as_mut_ptr();
        let mut size = cap as c_ulong;
        // SAFETY: the planes were checked to hold `rows` rows of `stride` bytes; the output buffer
        // holds `tjBufSize` bytes and NOREALLOC keeps TurboJPEG inside it.
        let rc = unsafe {
            tjCompressFromYUVPlanes(
                self.handle,
                planes.as_ptr(),
                w as c_int,
                strides.as_ptr(),
                h as c_int,
                SAMP_420,
                &mut out,
                &mut size,
                self.quality,
                NO_REALLOC,
            )
        };
        if rc != 0 {
            // SAFETY: TurboJPEG returns a NUL-terminated message it owns.
            let msg = unsafe { CStr::from_ptr(tjGetErrorStr2(self.handle)) };
            return Err(VideoError::Invalid(format!(
                "JPEG: {}",
                msg.to_string_lossy()
            )));
        }
        Ok(&self.buf[..size as usize])
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the handle came from tjInitCompress and is destroyed once.
        unsafe { tjDestroy(self.handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_become_a_jpeg_that_decodes_to_their_colour() {
        // A 7×5 frame (odd sizes: chroma planes round up) of one colour: Y 150, Cb 90, Cr 200.
        let (w, h) = (7usize, 5usize);
        let y = vec![150u8; w * h];
        let c = (w.div_ceil(2), h.div_ceil(2));
        let cb = vec![90u8; c.0 * c.1];
        let cr = vec![200u8; c.0 * c.1];
        let mut e = Encoder::new(95).unwrap();
        let jpeg = e
            .encode(&Planes {
                width: w as u32,
                height: h as u32,
                data: [&y, &cb, &cr],
                strides: [w, c.0, c.0],
            })
            .unwrap()
            .to_vec();
        let img = image::load_from_memory(&jpeg).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (7, 5));
        // JFIF's full-range YCbCr → RGB of (150, 90, 200).
        let (yf, cbf, crf) = (150.0f32, 90.0 - 128.0, 200.0 - 128.0);
        let want = [
            yf + 1.402 * crf,
            yf - 0.344136 * cbf - 0.714136 * crf,
            yf + 1.772 * cbf,
        ];
        let got = img.get_pixel(3, 2);
        for k in 0..3 {
            assert!(
                (got[k] as f32 - want[k].clamp(0.0, 255.0)).abs() <= 3.0,
                "{got:?} vs {want:?}"
            );
        }
        let err = e
            .encode(&Planes {
                width: w as u32,
                height: h as u32,
                data: [&y[..10], &cb, &cr],
                strides: [w, c.0, c.0],
            })
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("plane 0 of a 7×5 frame is too small"), "{err}");
    }
}
