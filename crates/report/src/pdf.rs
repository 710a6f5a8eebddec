//! A vector PDF backend for plotters, so figures go into LaTeX papers as `\includegraphics` of a
//! PDF: lines, rectangles, polygons and circles become PDF path operators, text is set in the
//! PDF base font Helvetica (nothing embedded; every PDF reader has it), transparency goes
//! through graphics states. One page the size of the figure, 1 pixel = 1 pt.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontTransform,
};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PdfError {
    path: PathBuf,
    source: std::io::Error,
}

/// Draws into a PDF file, written when the drawing is presented.
pub struct PdfBackend {
    path: PathBuf,
    size: (u32, u32),
    ops: String,
    /// Opacity (in thousandths) → graphics-state name.
    alphas: BTreeMap<u32, String>,
    written: bool,
}

impl PdfBackend {
    pub fn new(path: &Path, size: (u32, u32)) -> Self {
        PdfBackend {
            path: path.to_path_buf(),
            size,
            ops: String::new(),
            alphas: BTreeMap::new(),
            written: false,
        }
    }

    /// PDF y grows upwards.
    fn y(&self, y: i32) -> f64 {
        self.size.1 as f64 - y as f64
    }

    /// Sets the colour (fill or stroke) and its opacity; false when fully transparent.
    fn colour(&mut self, c: BackendColor, fill: bool) -> bool {
        if c.alpha <= 0.0 {
            return false;
        }
        let (r, g, b) = c.rgb;
        let op = if fill { "rg" } else { "RG" };
        let _ = write!(
            self.ops,
            "{} {} {} {op} ",
            r as f64 / 255.0,
            g as f64 / 255.0,
            b as f64 / 255.0
        );
        let key = (c.alpha.clamp(0.0, 1.0) * 1000.0).round() as u32;
        let n = self.alphas.len();
        let name = self
            .alphas
            .entry(key)
            .or_insert_with(|| format!("A{n}"))
            .clone();
        let _ = write!(self.ops, "/{name} gs ");
        true
    }

    fn path(&mut self, points: &[BackendCoord], close: bool) {
        for (i, &(x, y)) in points.iter().enumerate() {
            let op = if i == 0 { "m" } else { "l" };
            let y = self.y(y);
            let _ = write!(self.ops, "{x} {y} {op} ");
        }
        if close {
            self.ops.push_str("h ");
        }
    }

    fn write(&mut self) -> std::io::Result<()> {
        let (w, h) = self.size;
        let gs: String = self
            .alphas
            .iter()
            .map(|(a, name)| {
                let a = *a as f64 / 1000.0;
                format!("/{name} << /Type /ExtGState /ca {a} /CA {a} >> ")
            })
            .collect();
        let content = std::mem::take(&mut self.ops);
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w} {h}] /Contents 4 0 R \
                 /Resources << /Font << /F1 5 0 R >> /ExtGState << {gs}>> >> >>"
            ),
            format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len() + 1
            ),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                .to_string(),
        ];
        let mut out: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
        for o in offsets {
            let _ = writeln!(table, "{o:010} 00000 n ");
        }
        out.extend_from_slice(table.as_bytes());
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        std::fs::write(&self.path, out)
    }
}

/// Helvetica's advance widths (thousandths of the size) for ASCII 32–126, from its AFM.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667,
    611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500,
    222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];

/// Text in WinAnsi bytes (what Helvetica's encoding holds; others become `?`), escaped for a PDF
/// string, and its width in thousandths of the size.
fn encode(text: &str) -> (String, f64) {
    let mut out = String::new();
    let mut width = 0.0;
    for c in text.chars() {
        let (byte, w) = match c {
            ' '..='~' => (c as u8, HELVETICA[c as usize - 32] as f64),
            '–' => (0x96, 556.0),
            '—' => (0x97, 1000.0),
            '−' => (b'-', 584.0),
            '±' => (0xB1, 584.0),
            '·' => (0xB7, 278.0),
            '×' => (0xD7, 584.0),
            'é' => (0xE9, 556.0),
            _ => (b'?', 556.0),
        };
        width += w;
        match byte {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7E => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\{byte:03o}");
            }
        }
    }
    (out, width)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DrawingErrorKind<PdfError> + '_ {
    move |source| {
        DrawingErrorKind::DrawingError(PdfError {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl DrawingBackend for PdfBackend {
    type ErrorType = PdfError;

    fn get_size(&self) -> (u32, u32) {
        self.size
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<PdfError>> {
        Ok(())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<PdfError>> {
        if !self.written {
            let path = self.path.clone();
            self.write().map_err(io(&path))?;
            self.written = true;
        }
        Ok(())
    }

    fn draw_pixel(
        &mut self,
        (x, y): BackendCoord,
        c: BackendColor,
    ) -> Result<(), DrawingErrorKind<PdfError>> {
        if self.colour(c, true) {
            let y = self.y(y + 1);
            let _ = writeln!(self.ops, "{x} {y} 1 1 re f");
        }
        Ok(())
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<PdfError>> {
        self.draw_path([from, to], style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        (x0, y0): BackendCoord,
        (x1, y1): BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<PdfError>> {
        if !self.colour(style.color(), fill) {
            return Ok(());
        }
        // Filled: the pixels from the corner to the corner inclusive, as the raster does.
        let (w, h) = if fill {
            (x1 - x0 + 1, y1 - y0 + 1)
        } else {
            (x1 - x0, y1 - y0)
        };
        let y = self.y(y0) - h as f64;
        if fill {
            let _ = writeln!(self.ops, "{x0} {y} {w} {h} re f");
        } else {
            let _ = writeln!(self.ops, "{} w {x0} {y} {w} {h} re S", style.stroke_width());
        }
        Ok(())
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<PdfError>> {
        let points: Vec<BackendCoord> = path.into_iter().collect();
        if points.len() < 2 || !self.colour(style.color(), false) {
            return Ok(());
        }
        let _ = write!(self.ops, "{} w 1 J 1 j ", style.stroke_width());
        self.path(&points, false);
        self.ops.push_str("S\n");
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        (cx, cy): BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<PdfError>> {
        if !self.colour(style.color(), fill) {
            return Ok(());
        }
        // Four Bézier quarter arcs.
        let (x, y, r) = (cx as f64, self.y(cy), radius as f64);
        let k = 0.552_284_8 * r;
        let _ = writeln!(
            self.ops,
            "{} w {} {y} m {} {} {} {} {x} {} c {} {} {} {} {} {y} c {} {} {} {} {x} {} c {} {} {} {} {} {y} c {}",
            style.stroke_width(),
            x + r,
            x + r,
            y + k,
            x + k,
            y + r,
            y + r,
            x - k,
            y + r,
            x - r,
            y + k,
            x - r,
            x - r,
            y - k,
            x - k,
            y - r,
            y - r,
            x + k,
            y - r,
            x + r,
            y - k,
            x + r,
            if fill { "f" } else { "S" }
        );
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<PdfError>> {
        let points: Vec<BackendCoord> = vert.into_iter().collect();
        if points.len() < 3 || !self.colour(style.color(), true) {
            return Ok(());
        }
        self.path(&points, true);
        self.ops.push_str("f\n");
        Ok(())
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        (px, py): BackendCoord,
    ) -> Result<(), DrawingErrorKind<PdfError>> {
        if !self.colour(style.color(), true) {
            return Ok(());
        }
        let size = style.size();
        let (s, width) = encode(text);
        let width = width * size / 1000.0;
        // The anchor, in the text's own frame (baseline at y = 0, y up).
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => -0.72 * size,
            VPos::Center => -0.36 * size,
            VPos::Bottom => 0.0,
        };
        // Plotters turns text clockwise on the screen: clockwise in PDF's y-up frame.
        let (cos, sin) = match style.transform() {
            FontTransform::None => (1.0, 0.0),
            FontTransform::Rotate90 => (0.0, -1.0),
            FontTransform::Rotate180 => (-1.0, 0.0),
            FontTransform::Rotate270 => (0.0, 1.0),
        };
        let x = px as f64 + cos * dx - sin * dy;
        let y = self.y(py) + sin * dx + cos * dy;
        let _ = writeln!(
            self.ops,
            "BT /F1 {size} Tf {cos} {sin} {} {cos} {x} {y} Tm ({s}) Tj ET",
            -sin
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_encoded_for_helvetica() {
        let (s, w) = encode("a (b) 1–2 ₂");
        assert_eq!(s, "a \\(b\\) 1\\2262 ?");
        assert_eq!(
            w,
            556.0 + 278.0 + 333.0 + 556.0 + 333.0 + 278.0 + 556.0 * 3.0 + 278.0 + 556.0
        );
    }
}
