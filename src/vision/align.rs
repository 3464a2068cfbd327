//! Face alignment: a least-squares similarity transform (Umeyama's method; in 2-D it has a
//! closed form) from the detector's eye, nose and mouth points to the ArcFace 112×112
//! template, then a bilinear warp. Faces whose landmark geometry is implausible for
//! recognition (eyes too close, head turned or tilted too far) are refused with a reason.

use image::RgbImage;
use serde::Serialize;

use super::detect::{Detection, Point, landmark};
use super::resample::{Affine, warp_into};

/// Side of the aligned crop.
pub const CROP: u32 = 112;

/// ArcFace template for a 112×112 crop (insightface), in the convention where pixel centres
/// are integers: left eye, right eye, nose tip, left and right mouth corners.
const ARCFACE_112: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The four template points BlazeFace gives us, in continuous coordinates (+0.5): both eyes,
/// nose, and the mouth centre as the middle of the two corners.
fn template4() -> [Point; 4] {
    let t = ARCFACE_112;
    let p = |x: f32, y: f32| Point {
        x: x + 0.5,
        y: y + 0.5,
    };
    [
        p(t[0][0], t[0][1]),
        p(t[1][0], t[1][1]),
        p(t[2][0], t[2][1]),
        p((t[3][0] + t[4][0]) / 2.0, (t[3][1] + t[4][1]) / 2.0),
    ]
}

/// Limits on landmark geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlignLimits {
    /// Minimum distance between the eyes in frame pixels.
    pub min_eye_distance_px: f32,
    /// Maximum estimated yaw (head turned left/right), degrees.
    pub max_yaw_deg: f32,
    /// Maximum roll (head tilted sideways), degrees.
    pub max_roll_deg: f32,
}

impl AlignLimits {
    /// No geometry check (evaluation on benchmark photos).
    pub const NONE: AlignLimits = AlignLimits {
        min_eye_distance_px: 0.0,
        max_yaw_deg: f32::INFINITY,
        max_roll_deg: f32::INFINITY,
    };
}

impl Default for AlignLimits {
    fn default() -> Self {
        AlignLimits {
            min_eye_distance_px: 16.0,
            max_yaw_deg: 40.0,
            max_roll_deg: 35.0,
        }
    }
}

/// Pose and size estimates from the landmarks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Geometry {
    pub eye_distance_px: f32,
    /// Positive when the eye line rises to the image right.
    pub roll_deg: f32,
    /// Estimated from how far the nose sits off the eyes' midline, relative to eye distance
    /// (0 = frontal). A rough figure, good for rejecting profiles, not for measuring.
    pub yaw_deg: f32,
}

/// Why a face was not used.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    #[error("face too small: eyes {eye_distance_px:.0} px apart, need at least {min:.0}")]
    TooSmall { eye_distance_px: f32, min: f32 },
    #[error("head turned too far: about {yaw_deg:.0}° (limit {max:.0}°)")]
    TooTurned { yaw_deg: f32, max: f32 },
    #[error("head tilted too far: {roll_deg:.0}° (limit {max:.0}°)")]
    TooTilted { roll_deg: f32, max: f32 },
    #[error("landmarks are degenerate (cannot align)")]
    Degenerate,
}

pub fn geometry(det: &Detection) -> Geometry {
    let l = det.landmarks[landmark::LEFT_EYE];
    let r = det.landmarks[landmark::RIGHT_EYE];
    let n = det.landmarks[landmark::NOSE];
    let (dx, dy) = (r.x - l.x, r.y - l.y);
    let eye = (dx * dx + dy * dy).sqrt();
    let roll = (-dy).atan2(dx).to_degrees();
    // Nose offset from the eye midpoint, along the eye line, in units of eye distance.
    // A frontal face has it near 0; a face turned ~45° has it near 0.5.
    let (mx, my) = ((l.x + r.x) / 2.0, (l.y + r.y) / 2.0);
    let along = if eye > 0.0 {
        ((n.x - mx) * dx + (n.y - my) * dy) / (eye * eye)
    } else {
        0.0
    };
    let yaw = (along.clamp(-0.7, 0.7) / 0.7).asin().to_degrees();
    Geometry {
        eye_distance_px: eye,
        roll_deg: roll,
        yaw_deg: yaw,
    }
}

/// Check a detection's geometry against the limits.
pub fn check(det: &Detection, limits: &AlignLimits) -> Result<Geometry, Rejection> {
    if det.landmarks.len() < 4 {
        return Err(Rejection::Degenerate);
    }
    let g = geometry(det);
    if g.eye_distance_px < limits.min_eye_distance_px {
        return Err(Rejection::TooSmall {
            eye_distance_px: g.eye_distance_px,
            min: limits.min_eye_distance_px,
        });
    }
    if g.yaw_deg.abs() > limits.max_yaw_deg {
        return Err(Rejection::TooTurned {
            yaw_deg: g.yaw_deg,
            max: limits.max_yaw_deg,
        });
    }
    if g.roll_deg.abs() > limits.max_roll_deg {
        return Err(Rejection::TooTilted {
            roll_deg: g.roll_deg,
            max: limits.max_roll_deg,
        });
    }
    Ok(g)
}

/// Least-squares similarity transform (rotation, uniform scale, translation) taking `src`
/// points onto `dst` points. This is Umeyama's solution specialised to 2-D without
/// reflection: with centred points, `[a -b; b a]` minimises Σ|A·s − d|².
pub fn similarity(src: &[Point], dst: &[Point]) -> Option<Affine> {
    let n = src.len().min(dst.len());
    if n < 2 {
        return None;
    }
    let nf = n as f32;
    let (sx, sy) = src[..n]
        .iter()
        .fold((0.0, 0.0), |a, p| (a.0 + p.x, a.1 + p.y));
    let (dx, dy) = dst[..n]
        .iter()
        .fold((0.0, 0.0), |a, p| (a.0 + p.x, a.1 + p.y));
    let (msx, msy, mdx, mdy) = (sx / nf, sy / nf, dx / nf, dy / nf);
    let (mut num_a, mut num_b, mut den) = (0.0f32, 0.0f32, 0.0f32);
    for (s, d) in src[..n].iter().zip(&dst[..n]) {
        let (px, py) = (s.x - msx, s.y - msy);
        let (qx, qy) = (d.x - mdx, d.y - mdy);
        num_a += px * qx + py * qy;
        num_b += px * qy - py * qx;
        den += px * px + py * py;
    }
    if den < 1e-6 {
        return None;
    }
    let (a, b) = (num_a / den, num_b / den);
    Some(Affine {
        a,
        b: -b,
        tx: mdx - (a * msx - b * msy),
        c: b,
        d: a,
        ty: mdy - (b * msx + a * msy),
    })
}

/// The transform from frame pixels to the 112×112 crop for this face.
pub fn frame_to_crop(det: &Detection) -> Option<Affine> {
    if det.landmarks.len() < 4 {
        return None;
    }
    let src = [
        det.landmarks[landmark::LEFT_EYE],
        det.landmarks[landmark::RIGHT_EYE],
        det.landmarks[landmark::NOSE],
        det.landmarks[landmark::MOUTH],
    ];
    similarity(&src, &template4())
}

/// Warp the face into `crop` (112×112, reused between calls).
pub fn align_into(frame: &RgbImage, det: &Detection, crop: &mut RgbImage) -> Result<(), Rejection> {
    let to_crop = frame_to_crop(det).ok_or(Rejection::Degenerate)?;
    let to_frame = to_crop.inverse().ok_or(Rejection::Degenerate)?;
    if crop.dimensions() != (CROP, CROP) {
        *crop = RgbImage::new(CROP, CROP);
    }
    warp_into(frame, &to_frame, crop);
    Ok(())
}

/// Sharpness of an aligned crop: variance of the 4-neighbour Laplacian of its luminance.
/// Below roughly 30 on a 112×112 crop the face is visibly blurred.
pub fn sharpness(crop: &RgbImage) -> f32 {
    let (w, h) = (crop.width() as usize, crop.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let luma: Vec<f32> = crop
        .pixels()
        .map(|p| 0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32)
        .collect();
    let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            let lap = luma[i - 1] + luma[i + 1] + luma[i - w] + luma[i + w] - 4.0 * luma[i];
            sum += f64::from(lap);
            sum2 += f64::from(lap) * f64::from(lap);
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum2 / n - mean * mean) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::detect::BBox;

    fn det_with(points: [Point; 4]) -> Detection {
        let mut landmarks = points.to_vec();
        landmarks.extend([points[0], points[1]]);
        Detection {
            bbox: BBox {
                x: 0.0,
                y: 0.0,
                w: 100.0,
                h: 100.0,
            },
            score: 1.0,
            landmarks,
        }
    }

    #[test]
    fn similarity_recovers_a_known_transform() {
        let truth = Affine {
            a: 0.6,
            b: -0.8,
            tx: 5.0,
            c: 0.8,
            d: 0.6,
            ty: -3.0,
        };
        let src = [
            Point { x: 1.0, y: 2.0 },
            Point { x: 40.0, y: 7.0 },
            Point { x: 20.0, y: 30.0 },
            Point { x: 22.0, y: 45.0 },
        ];
        let dst: Vec<Point> = src
            .iter()
            .map(|p| {
                let (x, y) = truth.apply(p.x, p.y);
                Point { x, y }
            })
            .collect();
        let m = similarity(&src, &dst).unwrap();
        for (got, want) in [
            (m.a, truth.a),
            (m.b, truth.b),
            (m.tx, truth.tx),
            (m.c, truth.c),
            (m.d, truth.d),
            (m.ty, truth.ty),
        ] {
            assert!((got - want).abs() < 1e-3, "{m:?}");
        }
    }

    #[test]
    fn template_points_map_onto_themselves() {
        let t = template4();
        let m = frame_to_crop(&det_with(t)).unwrap();
        let (x, y) = m.apply(t[2].x, t[2].y);
        assert!((x - t[2].x).abs() < 1e-3 && (y - t[2].y).abs() < 1e-3);
        assert!((m.scale() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn geometry_flags_small_turned_and_tilted_faces() {
        let frontal = det_with([
            Point { x: 40.0, y: 50.0 },
            Point { x: 80.0, y: 50.0 },
            Point { x: 60.0, y: 70.0 },
            Point { x: 60.0, y: 90.0 },
        ]);
        let g = check(&frontal, &AlignLimits::default()).unwrap();
        assert!(g.yaw_deg.abs() < 1.0 && g.roll_deg.abs() < 1.0);
        let tiny = det_with([
            Point { x: 40.0, y: 50.0 },
            Point { x: 45.0, y: 50.0 },
            Point { x: 42.0, y: 53.0 },
            Point { x: 42.0, y: 56.0 },
        ]);
        assert!(matches!(
            check(&tiny, &AlignLimits::default()),
            Err(Rejection::TooSmall { .. })
        ));
        let turned = det_with([
            Point { x: 40.0, y: 50.0 },
            Point { x: 80.0, y: 50.0 },
            Point { x: 82.0, y: 70.0 },
            Point { x: 78.0, y: 90.0 },
        ]);
        assert!(matches!(
            check(&turned, &AlignLimits::default()),
            Err(Rejection::TooTurned { .. })
        ));
        let tilted = det_with([
            Point { x: 40.0, y: 80.0 },
            Point { x: 70.0, y: 40.0 },
            Point { x: 60.0, y: 70.0 },
            Point { x: 70.0, y: 85.0 },
        ]);
        assert!(matches!(
            check(&tilted, &AlignLimits::default()),
            Err(Rejection::TooTilted { .. })
        ));
    }

    #[test]
    fn sharpness_separates_sharp_from_flat() {
        let flat = RgbImage::from_pixel(112, 112, image::Rgb([90, 90, 90]));
        let sharp = RgbImage::from_fn(112, 112, |x, y| {
            if (x / 2 + y / 2) % 2 == 0 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        assert!(sharpness(&flat) < 1.0);
        assert!(sharpness(&sharp) > 1000.0);
    }
}
