//! Resampling: the detector's square input and the aligned face crop are both an affine map
//! from output pixels to source pixels, sampled bilinearly. When the map shrinks by 2× or
//! more, the source region is first box-averaged by an integer factor so that small outputs of
//! large frames do not alias.
//!
//! Coordinates are continuous with pixel `i` covering `[i, i+1)`, so its centre is `i + 0.5`.

use image::RgbImage;

/// `x' = a·x + b·y + tx`, `y' = c·x + d·y + ty`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub c: f32,
    pub d: f32,
    pub ty: f32,
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        a: 1.0,
        b: 0.0,
        tx: 0.0,
        c: 0.0,
        d: 1.0,
        ty: 0.0,
    };

    /// Uniform scale then translation: `p' = s·p + t`.
    pub fn scale_translate(s: f32, tx: f32, ty: f32) -> Affine {
        Affine {
            a: s,
            b: 0.0,
            tx,
            c: 0.0,
            d: s,
            ty,
        }
    }

    #[inline]
    pub fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        (
            self.a * x + self.b * y + self.tx,
            self.c * x + self.d * y + self.ty,
        )
    }

    pub fn inverse(&self) -> Option<Affine> {
        let det = self.a * self.d - self.b * self.c;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (a, b, c, d) = (self.d / det, -self.b / det, -self.c / det, self.a / det);
        Some(Affine {
            a,
            b,
            c,
            d,
            tx: -(a * self.tx + b * self.ty),
            ty: -(c * self.tx + d * self.ty),
        })
    }

    /// `self` after `first`: `p -> self(first(p))`.
    pub fn compose(&self, first: &Affine) -> Affine {
        Affine {
            a: self.a * first.a + self.b * first.c,
            b: self.a * first.b + self.b * first.d,
            tx: self.a * first.tx + self.b * first.ty + self.tx,
            c: self.c * first.a + self.d * first.c,
            d: self.c * first.b + self.d * first.d,
            ty: self.c * first.tx + self.d * first.ty + self.ty,
        }
    }

    /// Source pixels per output pixel (geometric mean of the axis scales).
    pub fn scale(&self) -> f32 {
        (self.a * self.d - self.b * self.c).abs().sqrt()
    }
}

/// Render `out_w × out_h` pixels where output pixel centre `p` shows source point
/// `to_src(p)`. Points outside the source are black.
pub fn warp(src: &RgbImage, to_src: &Affine, out_w: u32, out_h: u32) -> RgbImage {
    let mut out = RgbImage::new(out_w, out_h);
    warp_into(src, to_src, &mut out);
    out
}

/// [`warp`] into an existing buffer (its size is the output size).
pub fn warp_into(src: &RgbImage, to_src: &Affine, out: &mut RgbImage) {
    let (out_w, out_h) = out.dimensions();
    let k = to_src.scale().floor() as u32;
    if k >= 2 {
        // Box-average the part of the source the output can see, by the integer factor k,
        // then sample that with the map scaled by 1/k.
        let corners = [
            (0.0, 0.0),
            (out_w as f32, 0.0),
            (0.0, out_h as f32),
            (out_w as f32, out_h as f32),
        ]
        .map(|(x, y)| to_src.apply(x, y));
        let min_x = corners
            .iter()
            .map(|c| c.0)
            .fold(f32::INFINITY, f32::min)
            .floor()
            - 1.0;
        let min_y = corners
            .iter()
            .map(|c| c.1)
            .fold(f32::INFINITY, f32::min)
            .floor()
            - 1.0;
        let max_x = corners
            .iter()
            .map(|c| c.0)
            .fold(f32::NEG_INFINITY, f32::max)
            .ceil()
            + 1.0;
        let max_y = corners
            .iter()
            .map(|c| c.1)
            .fold(f32::NEG_INFINITY, f32::max)
            .ceil()
            + 1.0;
        let x0 = (min_x.max(0.0) as u32).min(src.width());
        let y0 = (min_y.max(0.0) as u32).min(src.height());
        let x1 = (max_x.max(0.0) as u32).min(src.width());
        let y1 = (max_y.max(0.0) as u32).min(src.height());
        // Align the region to multiples of k so that shrunk pixel i covers source [x0+ik, x0+(i+1)k).
        let shrunk = box_shrink(src, x0, y0, x1, y1, k);
        let inv_k = 1.0 / k as f32;
        let to_shrunk = Affine::scale_translate(inv_k, -(x0 as f32) * inv_k, -(y0 as f32) * inv_k);
        let map = to_shrunk.compose(to_src);
        sample_bilinear(&shrunk, &map, out);
    } else {
        sample_bilinear(src, to_src, out);
    }
}

fn sample_bilinear(src: &RgbImage, to_src: &Affine, out: &mut RgbImage) {
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let data = src.as_raw();
    let stride = sw as usize * 3;
    let out_w = out.width() as usize;
    let fetch = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= sw || y >= sh {
            [0.0; 3]
        } else {
            let i = y as usize * stride + x as usize * 3;
            [data[i] as f32, data[i + 1] as f32, data[i + 2] as f32]
        }
    };
    for (idx, px) in out.as_mut().chunks_exact_mut(3).enumerate() {
        let (u, v) = ((idx % out_w) as f32 + 0.5, (idx / out_w) as f32 + 0.5);
        let (x, y) = to_src.apply(u, v);
        // Continuous -> index space (pixel centres at integers).
        let (fx, fy) = (x - 0.5, y - 0.5);
        let (ix, iy) = (fx.floor(), fy.floor());
        let (wx, wy) = (fx - ix, fy - iy);
        let (ix, iy) = (ix as i64, iy as i64);
        let inside = ix >= 0 && iy >= 0 && ix + 1 < sw && iy + 1 < sh;
        let (p00, p10, p01, p11) = if inside {
            let i = iy as usize * stride + ix as usize * 3;
            let g = |j: usize| [data[j] as f32, data[j + 1] as f32, data[j + 2] as f32];
            (g(i), g(i + 3), g(i + stride), g(i + stride + 3))
        } else {
            (
                fetch(ix, iy),
                fetch(ix + 1, iy),
                fetch(ix, iy + 1),
                fetch(ix + 1, iy + 1),
            )
        };
        for c in 0..3 {
            let top = p00[c] + (p10[c] - p00[c]) * wx;
            let bottom = p01[c] + (p11[c] - p01[c]) * wx;
            px[c] = (top + (bottom - top) * wy + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
}

/// Average `k × k` blocks of the region `[x0, x1) × [y0, y1)`. Partial blocks at the right and
/// bottom edges average the pixels they have.
fn box_shrink(src: &RgbImage, x0: u32, y0: u32, x1: u32, y1: u32, k: u32) -> RgbImage {
    let w = (x1 - x0).div_ceil(k).max(1);
    let h = (y1 - y0).div_ceil(k).max(1);
    let mut out = RgbImage::new(w, h);
    if x1 <= x0 || y1 <= y0 {
        return out;
    }
    let stride = src.width() as usize * 3;
    let data = src.as_raw();
    let mut acc = vec![0u32; w as usize * 3];
    let mut counts = vec![0u32; w as usize];
    for oy in 0..h {
        acc.iter_mut().for_each(|a| *a = 0);
        counts.iter_mut().for_each(|a| *a = 0);
        let ys = y0 + oy * k;
        let ye = (ys + k).min(y1);
        for y in ys..ye {
            let row = &data[y as usize * stride..];
            for x in x0..x1 {
                let o = ((x - x0) / k) as usize;
                let i = x as usize * 3;
                acc[o * 3] += u32::from(row[i]);
                acc[o * 3 + 1] += u32::from(row[i + 1]);
                acc[o * 3 + 2] += u32::from(row[i + 2]);
                counts[o] += 1;
            }
        }
        for ox in 0..w as usize {
            let n = counts[ox].max(1);
            let p = [
                ((acc[ox * 3] + n / 2) / n) as u8,
                ((acc[ox * 3 + 1] + n / 2) / n) as u8,
                ((acc[ox * 3 + 2] + n / 2) / n) as u8,
            ];
            out.put_pixel(ox as u32, oy, image::Rgb(p));
        }
    }
    out
}

/// A square window of a frame shown at `side × side`: the frame padded to a square (centred)
/// for the whole-frame case, or a window around a face for a closer look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SquareView {
    /// Maps view pixels to frame pixels.
    pub to_frame: Affine,
    pub side: u32,
}

impl SquareView {
    /// The whole frame, padded evenly to a square.
    pub fn letterbox(width: u32, height: u32, side: u32) -> SquareView {
        let long = width.max(height) as f32;
        let s = long / side as f32;
        let (ox, oy) = ((long - width as f32) / 2.0, (long - height as f32) / 2.0);
        SquareView {
            to_frame: Affine::scale_translate(s, -ox, -oy),
            side,
        }
    }

    /// The square of side `extent` frame pixels centred on `(cx, cy)`.
    pub fn window(cx: f32, cy: f32, extent: f32, side: u32) -> SquareView {
        let s = extent / side as f32;
        SquareView {
            to_frame: Affine::scale_translate(s, cx - extent / 2.0, cy - extent / 2.0),
            side,
        }
    }

    pub fn render(&self, frame: &RgbImage) -> RgbImage {
        warp(frame, &self.to_frame, self.side, self.side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_and_compose_round_trip() {
        let m = Affine {
            a: 0.8,
            b: -0.3,
            tx: 12.0,
            c: 0.3,
            d: 0.8,
            ty: -4.0,
        };
        let inv = m.inverse().unwrap();
        let id = inv.compose(&m);
        let (x, y) = id.apply(37.0, -11.0);
        assert!((x - 37.0).abs() < 1e-4 && (y + 11.0).abs() < 1e-4);
    }

    #[test]
    fn letterbox_pads_evenly_and_keeps_content() {
        // 40x20 white frame into a 20x20 view: rows 0..5 and 15..20 are padding.
        let frame = RgbImage::from_pixel(40, 20, image::Rgb([255, 255, 255]));
        let view = SquareView::letterbox(40, 20, 20);
        let out = view.render(&frame);
        assert_eq!(out.get_pixel(10, 2).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(10, 10).0, [255, 255, 255]);
        assert_eq!(out.get_pixel(10, 17).0, [0, 0, 0]);
    }

    #[test]
    fn shrinking_averages_instead_of_aliasing() {
        // A 1-pixel checkerboard shrunk 8x must come out mid grey, not black or white.
        let frame = RgbImage::from_fn(256, 256, |x, y| {
            if (x + y) % 2 == 0 {
                image::Rgb([255, 255, 255])
            } else {
                image::Rgb([0, 0, 0])
            }
        });
        let out = SquareView::letterbox(256, 256, 32).render(&frame);
        for p in out.pixels().skip(33).take(30) {
            assert!((120..=135).contains(&p.0[0]), "{p:?}");
        }
    }
}
