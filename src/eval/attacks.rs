//! A synthetic presentation-attack set: live face photos re-rendered as a printed photo or a
//! phone screen held in front of the camera, and the frames of a visit. A **regression test,
//! not a benchmark**: real attacks have lighting, optics and materials no formula has.
//!
//! Every photo is first scaled to a camera's size ([`camera_size`]: longer side 320..=480).
//! Every frame (live or attack) is `W×H` of that photo, gets camera noise (Gaussian,
//! σ = 2 levels), a shift of up to ±2 px between frames, and is JPEG-compressed at quality 85
//! (like a camera's MJPEG), so that compression alone does not tell them apart.
//!
//! - **print**: the photo on a sheet filling 80-90% of the frame (random per visit), a white
//!   paper margin (4% of the sheet) around it, in front of the scene (the source photo blurred
//!   and darkened to 45%); ink on paper: saturation ×0.75, contrast 0.8 with the blacks raised to
//!   25, gamma 1.1, a 3×3 blur, paper grain (±4% multiplicative, 2 px grain).
//! - **screen**: the photo on a phone screen filling 75-90% of the frame, inside a black bezel
//!   (6% of the screen); the screen is simulated at 4× the camera's resolution as a grid of
//!   pixels with vertical R, G, B stripes (pitch 0.55-0.9 camera pixels, so the grids beat:
//!   moiré) and dark row gaps, then box-averaged to the camera; gamma 0.85, a blue cast (white
//!   point ×[0.92, 0.97, 1.08]) and a soft glare spot (up to +60 levels).

use image::{Rgb, RgbImage};

/// Attack kinds of the synthetic set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Print,
    Screen,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Print => "print (synthetic)",
            Kind::Screen => "screen replay (synthetic)",
        }
    }
}

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }
}

/// A stable seed from a string (FNV-1a).
pub fn seed_of(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn sample(img: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let x = (x - 0.5).clamp(0.0, w - 1.0);
    let y = (y - 0.5).clamp(0.0, h - 1.0);
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = (
        (x0 + 1).min(img.width() - 1),
        (y0 + 1).min(img.height() - 1),
    );
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |xx, yy| img.get_pixel(xx, yy).0.map(f32::from);
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    let mut out = [0f32; 3];
    for i in 0..3 {
        let top = a[i] + (b[i] - a[i]) * fx;
        let bot = c[i] + (d[i] - c[i]) * fx;
        out[i] = top + (bot - top) * fy;
    }
    out
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// The scene behind the attack: the source blurred (shrunk 8×, enlarged back) and darkened.
fn background(src: &RgbImage, level: f32) -> RgbImage {
    use image::imageops::{FilterType, resize};
    let (w, h) = src.dimensions();
    let small = resize(src, (w / 8).max(1), (h / 8).max(1), FilterType::Triangle);
    let mut out = resize(&small, w, h, FilterType::Triangle);
    for p in out.pixels_mut() {
        p.0 = p.0.map(|c| to_u8(f32::from(c) * level));
    }
    out
}

/// Every photo is brought to a camera's size first: its longer side scaled into 320..=480
/// pixels (bilinear), so that tiny and huge photos are treated alike.
pub fn camera_size(img: RgbImage) -> RgbImage {
    let m = img.width().max(img.height());
    let target = m.clamp(320, 480);
    if m == target {
        return img;
    }
    let s = target as f32 / m as f32;
    image::imageops::resize(
        &img,
        ((img.width() as f32 * s).round() as u32).max(1),
        ((img.height() as f32 * s).round() as u32).max(1),
        image::imageops::FilterType::Triangle,
    )
}

/// Where the attack medium sits in the frame: (left, top, width, height).
fn placement(w: u32, h: u32, fill: f32, rng: &mut Rng) -> (f32, f32, f32, f32) {
    let (mw, mh) = (w as f32 * fill, h as f32 * fill);
    let l = (w as f32 - mw) * rng.range(0.3, 0.7);
    let t = (h as f32 - mh) * rng.range(0.3, 0.7);
    (l, t, mw, mh)
}

/// The source photo as a print held in front of the camera (one still, before camera effects).
pub fn print(src: &RgbImage, rng: &mut Rng) -> RgbImage {
    let (w, h) = src.dimensions();
    let mut out = background(src, 0.45);
    let (l, t, mw, mh) = placement(w, h, rng.range(0.8, 0.9), rng);
    let margin = 0.04;
    let grain_seed = rng.next_u64();
    let grain = |x: u32, y: u32| {
        let mut r = Rng::new(grain_seed ^ (u64::from(x / 2) << 32) ^ u64::from(y / 2));
        1.0 + 0.04 * r.normal()
    };
    let paper = [238.0f32, 236.0, 228.0];
    let mut sheet = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = ((x as f32 + 0.5 - l) / mw, (y as f32 + 0.5 - t) / mh);
            if !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) {
                sheet.put_pixel(x, y, *out.get_pixel(x, y));
                continue;
            }
            let g = grain(x, y);
            let inner = |a: f32| (a - margin) / (1.0 - 2.0 * margin);
            let (iu, iv) = (inner(u), inner(v));
            let px = if (0.0..1.0).contains(&iu) && (0.0..1.0).contains(&iv) {
                let s = sample(src, iu * w as f32, iv * h as f32);
                let grey = 0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2];
                s.map(|c| {
                    let c = grey + 0.75 * (c - grey);
                    let c = 25.0 + 0.8 * c;
                    255.0 * (c / 255.0).clamp(0.0, 1.0).powf(1.1)
                })
            } else {
                paper
            };
            sheet.put_pixel(x, y, Rgb(px.map(|c| to_u8(c * g))));
        }
    }
    // A 3x3 blur of the sheet (ink spread, the camera focused on the paper).
    for y in 0..h {
        for x in 0..w {
            let mut s = [0f32; 3];
            for dy in -1i32..=1 {
                for dx in -1i32..=1 {
                    let xx = (x as i32 + dx).clamp(0, w as i32 - 1) as u32;
                    let yy = (y as i32 + dy).clamp(0, h as i32 - 1) as u32;
                    let p = sheet.get_pixel(xx, yy).0;
                    for c in 0..3 {
                        s[c] += f32::from(p[c]);
                    }
                }
            }
            out.put_pixel(x, y, Rgb(s.map(|v| to_u8(v / 9.0))));
        }
    }
    out
}

/// The source photo on a phone screen held in front of the camera (one still).
pub fn screen(src: &RgbImage, rng: &mut Rng) -> RgbImage {
    const S: u32 = 4;
    let (w, h) = src.dimensions();
    let mut out = background(src, 0.35);
    let (l, t, mw, mh) = placement(w, h, rng.range(0.75, 0.9), rng);
    let bezel = 0.06;
    let pitch = rng.range(0.55, 0.9);
    let (gx, gy) = (
        rng.range(0.0, 1.0) * w as f32,
        rng.range(0.0, 1.0) * h as f32,
    );
    let glare_amp = rng.range(20.0, 60.0);
    let glare_r = 0.25 * w.min(h) as f32;
    let white = [0.92f32, 0.97, 1.08];
    for y in 0..h {
        for x in 0..w {
            let (u, v) = ((x as f32 + 0.5 - l) / mw, (y as f32 + 0.5 - t) / mh);
            if !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) {
                continue;
            }
            let inner = |a: f32| (a - bezel) / (1.0 - 2.0 * bezel);
            if !(0.0..1.0).contains(&inner(u)) || !(0.0..1.0).contains(&inner(v)) {
                out.put_pixel(x, y, Rgb([12, 12, 14]));
                continue;
            }
            // Average S x S sub-samples of the screen's pixel grid.
            let mut acc = [0f32; 3];
            for sy in 0..S {
                for sx in 0..S {
                    let fx = x as f32 + (sx as f32 + 0.5) / S as f32;
                    let fy = y as f32 + (sy as f32 + 0.5) / S as f32;
                    // Screen pixel coordinates (pitch in camera pixels).
                    let (su, sv) = ((fx - l) / pitch, (fy - t) / pitch);
                    let (cu, cv) = (su.floor() + 0.5, sv.floor() + 0.5);
                    let (iu, iv) = (inner(cu * pitch / mw), inner(cv * pitch / mh));
                    let s = sample(src, iu * w as f32, iv * h as f32);
                    let sub = ((su.fract()) * 3.0) as usize;
                    let row_gap = if sv.fract() > 0.85 { 0.25 } else { 1.0 };
                    acc[sub.min(2)] += 3.0 * s[sub.min(2)] * row_gap;
                }
            }
            let d2 = (x as f32 - gx).powi(2) + (y as f32 - gy).powi(2);
            let glare = glare_amp * (-d2 / (2.0 * glare_r * glare_r)).exp();
            let px: [f32; 3] = std::array::from_fn(|c| {
                let lin = acc[c] / (S * S) as f32 / 255.0;
                255.0 * lin.clamp(0.0, 1.0).powf(0.85) * white[c] + glare
            });
            out.put_pixel(x, y, Rgb(px.map(to_u8)));
        }
    }
    out
}

/// One camera frame of a still scene: shifted by `(dx, dy)` pixels, camera noise, JPEG q85.
pub fn camera_frame(scene: &RgbImage, dx: f32, dy: f32, rng: &mut Rng) -> RgbImage {
    let (w, h) = scene.dimensions();
    let shifted = RgbImage::from_fn(w, h, |x, y| {
        let s = sample(scene, x as f32 + 0.5 + dx, y as f32 + 0.5 + dy);
        Rgb(s.map(|c| to_u8(c + 2.0 * rng.normal())))
    });
    let mut jpeg = Vec::new();
    let encoded =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85).encode_image(&shifted);
    match encoded
        .ok()
        .and_then(|()| image::load_from_memory(&jpeg).ok())
    {
        Some(img) => img.to_rgb8(),
        None => shifted,
    }
}

/// The `frames` camera frames of a visit to `scene` (shift up to ±2 px between frames).
pub fn visit(scene: &RgbImage, frames: usize, rng: &mut Rng) -> Vec<RgbImage> {
    (0..frames)
        .map(|i| {
            let (dx, dy) = if i == 0 {
                (0.0, 0.0)
            } else {
                (rng.range(-2.0, 2.0), rng.range(-2.0, 2.0))
            };
            camera_frame(scene, dx, dy, rng)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_keep_the_size_and_differ_from_the_source() {
        let src = RgbImage::from_fn(120, 100, |x, y| Rgb([(x * 2) as u8, (y * 2) as u8, 128]));
        let mut rng = Rng::new(1);
        for img in [print(&src, &mut rng), screen(&src, &mut rng)] {
            assert_eq!(img.dimensions(), src.dimensions());
            assert_ne!(img.as_raw(), src.as_raw());
        }
        let v = visit(&src, 3, &mut rng);
        assert_eq!(v.len(), 3);
        // Deterministic from the seed.
        let a = screen(&src, &mut Rng::new(7));
        let b = screen(&src, &mut Rng::new(7));
        assert_eq!(a.as_raw(), b.as_raw());
    }
}
