//! Liveness cues that need no model, each a number per frame (higher = more like an attack,
//! unless said otherwise):
//!
//! - **moiré / pixel grid**: a screen filmed by a camera shows its pixel grid beating against the
//!   sensor's as isolated peaks in the high frequencies of the face's spectrum; a face (and a
//!   print, mostly) has a smooth, falling spectrum. Peak-to-median power of the high band of a
//!   Hann-windowed 2-D FFT of the face at camera resolution, JPEG's 8-pixel block lines excluded.
//! - **high-frequency share**: high-band over mid-band power (a print or a re-photographed screen
//!   loses fine detail, or gains the grid).
//! - **bezel / paper edge**: a long straight edge (the phone's bezel, the sheet's border) in the
//!   enlarged crop around the face, outside the face: the strongest row or column of gradient
//!   energy there over the median one.
//! - **specular glare**: share of the face box's pixels that are saturated white (a glossy
//!   print or a screen under a light).
//! - **colour**: chroma spread of the face (Cb/Cr standard deviation): prints and screens
//!   compress the skin's colours (lower = more like an attack).
//!
//! Which of these pay is measured by `facegate eval --liveness` (see the README); the fusion
//! uses only those.

use std::sync::Arc;

use image::RgbImage;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use serde::Serialize;

use crate::vision::detect::BBox;

/// The model-free cues of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Cues {
    /// log10 of the high band's peak-to-median power (excluding the JPEG block lines).
    pub moire: f32,
    /// log10 of the high band's power over the mid band's.
    pub hf_share: f32,
    /// Strongest straight-edge row/column outside the face over the median one.
    pub bezel: f32,
    /// Share of saturated white pixels in the face box.
    pub glare: f32,
    /// Cb/Cr standard deviation in the face box (0..255 scale).
    pub chroma: f32,
}

/// Side of the square FFT patch (power of two).
const PATCH_MAX: usize = 128;
const PATCH_MIN: usize = 32;

/// Computes [`Cues`]; keeps its FFT plans and buffers between frames.
pub struct CueMeter {
    planner: FftPlanner<f32>,
    plans: Vec<(usize, Arc<dyn Fft<f32>>)>,
    buf: Vec<Complex32>,
}

impl Default for CueMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl CueMeter {
    pub fn new() -> CueMeter {
        CueMeter {
            planner: FftPlanner::new(),
            plans: Vec::new(),
            buf: Vec::new(),
        }
    }

    fn plan(&mut self, n: usize) -> Arc<dyn Fft<f32>> {
        if let Some((_, p)) = self.plans.iter().find(|(m, _)| *m == n) {
            return Arc::clone(p);
        }
        let p = self.planner.plan_fft_forward(n);
        self.plans.push((n, Arc::clone(&p)));
        p
    }

    /// The cues of the face in `bbox`; `crop` is the enlarged crop around it (the liveness
    /// network's input, the face in its middle `1/scale`).
    pub fn measure(&mut self, frame: &RgbImage, bbox: &BBox, crop: &RgbImage, scale: f32) -> Cues {
        let (moire, hf_share) = self.spectrum(frame, bbox).unwrap_or((0.0, 0.0));
        let (glare, chroma) = colour(frame, bbox);
        Cues {
            moire,
            hf_share,
            bezel: bezel(crop, scale),
            glare,
            chroma,
        }
    }

    #[allow(clippy::needless_range_loop)] // 2-D indices into flat buffers
    /// (moiré, high-frequency share) of a square grey patch at the face's centre, at camera
    /// resolution. `None` for a face too small.
    fn spectrum(&mut self, frame: &RgbImage, bbox: &BBox) -> Option<(f32, f32)> {
        let side = (bbox.w.min(bbox.h) * 0.8) as usize;
        if side < PATCH_MIN {
            return None;
        }
        let m = side.min(PATCH_MAX);
        let n = if m.is_power_of_two() {
            m
        } else {
            m.next_power_of_two() / 2
        };
        let c = bbox.centre();
        let x0 = (c.x - n as f32 / 2.0).round() as i64;
        let y0 = (c.y - n as f32 / 2.0).round() as i64;
        let (fw, fh) = (i64::from(frame.width()), i64::from(frame.height()));
        if x0 < 0 || y0 < 0 || x0 + n as i64 > fw || y0 + n as i64 > fh {
            return None;
        }
        let hann: Vec<f32> = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos())
            .collect();
        self.buf.clear();
        let mut mean = 0.0f32;
        for y in 0..n {
            for x in 0..n {
                let p = frame
                    .get_pixel((x0 + x as i64) as u32, (y0 + y as i64) as u32)
                    .0;
                let g = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
                mean += g;
                self.buf.push(Complex32::new(g, 0.0));
            }
        }
        mean /= (n * n) as f32;
        for y in 0..n {
            for x in 0..n {
                let v = &mut self.buf[y * n + x];
                v.re = (v.re - mean) * hann[x] * hann[y];
            }
        }
        let fft = self.plan(n);
        // Rows, then columns (transpose, rows, transpose back not needed for a power spectrum
        // as long as indices are read consistently).
        for row in self.buf.chunks_exact_mut(n) {
            fft.process(row);
        }
        let mut col = vec![Complex32::new(0.0, 0.0); n];
        for x in 0..n {
            for y in 0..n {
                col[y] = self.buf[y * n + x];
            }
            fft.process(&mut col);
            for y in 0..n {
                self.buf[y * n + x] = col[y];
            }
        }
        let block = n / 8;
        let near_block_line = |k: usize| {
            let f = k.min(n - k);
            block > 0 && (f % block <= 1 || f % block >= block - 1) && f >= block - 1
        };
        let mut high = Vec::with_capacity(n * n / 2);
        let (mut e_high, mut e_mid) = (0f64, 0f64);
        for v in 0..n {
            for u in 0..n {
                let fu = u.min(n - u) as f32 / n as f32;
                let fv = v.min(n - v) as f32 / n as f32;
                let r = (fu * fu + fv * fv).sqrt();
                let p = self.buf[v * n + u].norm_sqr();
                if (0.05..0.25).contains(&r) {
                    e_mid += f64::from(p);
                } else if (0.25..=0.5).contains(&r) {
                    e_high += f64::from(p);
                    if !near_block_line(u) && !near_block_line(v) {
                        high.push(p);
                    }
                }
            }
        }
        if high.len() < 16 || e_mid <= 0.0 {
            return None;
        }
        let peak = high.iter().copied().fold(0.0f32, f32::max);
        let mid = high.len() / 2;
        let median = *high.select_nth_unstable_by(mid, f32::total_cmp).1;
        let moire = ((peak + 1e-6) / (median + 1e-6)).log10();
        let hf = ((e_high + 1e-6) / e_mid).log10() as f32;
        Some((moire, hf))
    }
}

#[allow(clippy::needless_range_loop)] // 2-D indices into flat buffers
/// Strongest straight row/column of gradient energy outside the face over the median row or
/// column, in the enlarged crop (face in the middle `1/scale` of it).
pub fn bezel(crop: &RgbImage, scale: f32) -> f32 {
    let (w, h) = (crop.width() as usize, crop.height() as usize);
    if w < 16 || h < 16 {
        return 0.0;
    }
    let grey: Vec<f32> = crop
        .pixels()
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect();
    let g = |x: usize, y: usize| grey[y * w + x];
    let mut rows = vec![0f32; h];
    let mut cols = vec![0f32; w];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let gy = (g(x, y + 1) - g(x, y - 1)).abs();
            let gx = (g(x + 1, y) - g(x - 1, y)).abs();
            // A horizontal edge (strong vertical gradient, weak horizontal one) adds to its
            // row; a vertical edge to its column.
            rows[y] += (gy - gx).max(0.0);
            cols[x] += (gx - gy).max(0.0);
        }
    }
    let face = 1.0 / scale.max(1.0);
    let lo = ((0.5 - face / 2.0) * h as f32) as usize;
    let hi = ((0.5 + face / 2.0) * h as f32) as usize;
    let outside = |v: &[f32]| -> f32 {
        v.iter()
            .enumerate()
            .filter(|(i, _)| (*i >= 2 && *i < lo) || (*i > hi && *i + 2 < v.len()))
            .map(|(_, x)| *x)
            .fold(0.0, f32::max)
    };
    let median = |v: &[f32]| -> f32 {
        let mut s: Vec<f32> = v[1..v.len() - 1].to_vec();
        let m = s.len() / 2;
        *s.select_nth_unstable_by(m, f32::total_cmp).1
    };
    let r = outside(&rows) / (median(&rows) + 1.0);
    let c = outside(&cols) / (median(&cols) + 1.0);
    r.max(c)
}

/// (glare share, chroma spread) of the face box.
pub fn colour(frame: &RgbImage, bbox: &BBox) -> (f32, f32) {
    let x0 = bbox.x.max(0.0) as u32;
    let y0 = bbox.y.max(0.0) as u32;
    let x1 = ((bbox.x + bbox.w).max(0.0) as u32).min(frame.width());
    let y1 = ((bbox.y + bbox.h).max(0.0) as u32).min(frame.height());
    if x1 <= x0 + 1 || y1 <= y0 + 1 {
        return (0.0, 0.0);
    }
    let step = (((x1 - x0) * (y1 - y0)) as f32 / 16384.0).sqrt().max(1.0) as usize;
    let (mut n, mut sat) = (0u32, 0u32);
    let (mut sb, mut sr, mut sbb, mut srr) = (0f64, 0f64, 0f64, 0f64);
    for y in (y0..y1).step_by(step) {
        for x in (x0..x1).step_by(step) {
            let p = frame.get_pixel(x, y).0;
            let (r, g, b) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
            if p.iter().all(|&c| c >= 240) {
                sat += 1;
            }
            let cb = -0.168736 * r - 0.331264 * g + 0.5 * b;
            let cr = 0.5 * r - 0.418688 * g - 0.081312 * b;
            sb += cb;
            sr += cr;
            sbb += cb * cb;
            srr += cr * cr;
            n += 1;
        }
    }
    let nf = f64::from(n.max(1));
    let var = |s: f64, ss: f64| (ss / nf - (s / nf).powi(2)).max(0.0);
    let chroma = (var(sb, sbb) + var(sr, srr)).sqrt() as f32;
    (sat as f32 / n.max(1) as f32, chroma)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(s: f32) -> BBox {
        BBox {
            x: 32.0,
            y: 32.0,
            w: s,
            h: s,
        }
    }

    #[test]
    fn a_pixel_grid_raises_the_moire_cue() {
        // A smooth gradient face stand-in, then the same with a fine periodic grid on top.
        let smooth = RgbImage::from_fn(256, 256, |x, y| {
            let v = (80.0 + 60.0 * ((x as f32 / 40.0).sin() + (y as f32 / 55.0).cos())) as u8;
            image::Rgb([v, v, v])
        });
        let mut grid = smooth.clone();
        for (x, y, p) in grid.enumerate_pixels_mut() {
            // Period 2.7 px: not a JPEG block line.
            let s = ((x as f32 * 2.0 * std::f32::consts::PI / 2.7).sin() * 25.0) as i16;
            let _ = y;
            for c in p.0.iter_mut() {
                *c = (i16::from(*c) + s).clamp(0, 255) as u8;
            }
        }
        let mut m = CueMeter::new();
        let b = bbox(160.0);
        let crop = RgbImage::new(128, 128);
        let a = m.measure(&smooth, &b, &crop, 2.7);
        let g = m.measure(&grid, &b, &crop, 2.7);
        assert!(g.moire > a.moire + 1.0, "{a:?} {g:?}");
        assert!(g.hf_share > a.hf_share, "{a:?} {g:?}");
    }

    #[test]
    fn a_long_straight_edge_outside_the_face_raises_the_bezel_cue() {
        let plain = RgbImage::from_fn(128, 128, |x, y| {
            let v = (100 + (x * 7 + y * 13) % 9) as u8;
            image::Rgb([v, v, v])
        });
        let mut edged = plain.clone();
        for y in 0..128 {
            for x in 0..12 {
                edged.put_pixel(x, y, image::Rgb([10, 10, 10]));
            }
        }
        assert!(bezel(&edged, 2.7) > 3.0 * bezel(&plain, 2.7).max(1.0));
    }

    #[test]
    fn glare_and_chroma() {
        let img = RgbImage::from_fn(100, 100, |x, _| {
            if x < 50 {
                image::Rgb([250, 250, 250])
            } else {
                image::Rgb([200, 120, 90])
            }
        });
        let (glare, chroma) = colour(
            &img,
            &BBox {
                x: 0.0,
                y: 0.0,
                w: 100.0,
                h: 100.0,
            },
        );
        assert!((glare - 0.5).abs() < 0.05, "{glare}");
        assert!(chroma > 10.0, "{chroma}");
    }
}
