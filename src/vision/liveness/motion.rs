//! Motion across the frames of a visit: a photo or a screen moves as one plane, so one
//! homography maps its landmarks from one frame to another exactly (up to landmark noise);
//! a real head that turns shows parallax (the nose tip and the ears are not in the plane of
//! the eyes and mouth), which no homography explains.
//!
//! For each frame against the visit's first, with the detector's six keypoints (eyes, nose tip,
//! mouth, ears) in units of the eye distance: `moved` is what a similarity (shift, turn, zoom)
//! leaves unexplained (a visitor standing still has none, whether live or not), `parallax` what
//! the best homography leaves unexplained. Planar motion = moved clearly, parallax at noise level.

use serde::Serialize;

use crate::vision::detect::Point;

/// Motion evidence of a visit so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Motion {
    /// Largest non-similarity motion against the first frame (RMS, eye distances).
    pub moved: f32,
    /// The homography residual (RMS, eye distances) at that frame.
    pub parallax: f32,
}

impl Motion {
    /// Moved enough to tell, and (nearly) all of it explained by one plane: the homography
    /// leaves at most `max_ratio` of the motion unexplained. (A head model turning 17° leaves
    /// about a third; a flat photo turned as much moves only ~0.02 eye distances away from a
    /// similarity, about the keypoints' noise: see the test.)
    pub fn planar(&self, min_moved: f32, max_ratio: f32) -> bool {
        self.moved >= min_moved && self.parallax <= max_ratio * self.moved
    }
}

/// The motion of `frames` (each a frame's keypoints, same order) against the first.
pub fn motion(frames: &[Vec<Point>]) -> Motion {
    let Some(first) = frames.first() else {
        return Motion::default();
    };
    let iod = |p: &[Point]| {
        if p.len() < 2 {
            return 0.0;
        }
        ((p[0].x - p[1].x).powi(2) + (p[0].y - p[1].y).powi(2)).sqrt()
    };
    let mut best = Motion::default();
    for f in &frames[1..] {
        if f.len() != first.len() || f.len() < 5 {
            continue;
        }
        let unit = 0.5 * (iod(first) + iod(f));
        if unit < 1.0 {
            continue;
        }
        let moved = similarity_residual(first, f) / unit;
        if moved > best.moved {
            let parallax = homography_residual(first, f).map_or(moved, |r| r / unit);
            best = Motion { moved, parallax };
        }
    }
    best
}

/// RMS residual of the least-squares similarity `a → b`.
pub fn similarity_residual(a: &[Point], b: &[Point]) -> f32 {
    let n = a.len() as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sxx, mut sxy, mut var) = (0f64, 0f64, 0f64);
    for (p, q) in a.iter().zip(b) {
        let (ax, ay) = (f64::from(p.x) - ma.0, f64::from(p.y) - ma.1);
        let (bx, by) = (f64::from(q.x) - mb.0, f64::from(q.y) - mb.1);
        sxx += ax * bx + ay * by;
        sxy += ax * by - ay * bx;
        var += ax * ax + ay * ay;
    }
    if var <= 0.0 {
        return 0.0;
    }
    let (c, s) = (sxx / var, sxy / var);
    let mut err = 0f64;
    for (p, q) in a.iter().zip(b) {
        let (ax, ay) = (f64::from(p.x) - ma.0, f64::from(p.y) - ma.1);
        let x = c * ax - s * ay + mb.0;
        let y = s * ax + c * ay + mb.1;
        err += (x - f64::from(q.x)).powi(2) + (y - f64::from(q.y)).powi(2);
    }
    (err / n).sqrt() as f32
}

fn mean(p: &[Point]) -> (f64, f64) {
    let n = p.len().max(1) as f64;
    (
        p.iter().map(|q| f64::from(q.x)).sum::<f64>() / n,
        p.iter().map(|q| f64::from(q.y)).sum::<f64>() / n,
    )
}

/// RMS residual of the least-squares homography `a → b` (DLT with h33 = 1 on coordinates
/// centred and scaled per set); `None` when it is degenerate.
pub fn homography_residual(a: &[Point], b: &[Point]) -> Option<f32> {
    if a.len() < 4 || a.len() != b.len() {
        return None;
    }
    let norm = |p: &[Point]| {
        let (mx, my) = mean(p);
        let d = p
            .iter()
            .map(|q| ((f64::from(q.x) - mx).powi(2) + (f64::from(q.y) - my).powi(2)).sqrt())
            .sum::<f64>()
            / p.len() as f64;
        let s = if d > 0.0 {
            std::f64::consts::SQRT_2 / d
        } else {
            1.0
        };
        let pts: Vec<(f64, f64)> = p
            .iter()
            .map(|q| ((f64::from(q.x) - mx) * s, (f64::from(q.y) - my) * s))
            .collect();
        (pts, s)
    };
    let (pa, _) = norm(a);
    let (pb, sb) = norm(b);
    // Normal equations of the 2N x 8 system.
    let mut m = [[0f64; 9]; 8];
    for (&(x, y), &(u, v)) in pa.iter().zip(&pb) {
        let rows = [
            ([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y], u),
            ([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y], v),
        ];
        for (r, rhs) in rows {
            for i in 0..8 {
                for j in 0..8 {
                    m[i][j] += r[i] * r[j];
                }
                m[i][8] += r[i] * rhs;
            }
        }
    }
    let h = solve8(m)?;
    let mut err = 0f64;
    for (&(x, y), &(u, v)) in pa.iter().zip(&pb) {
        let w = h[6] * x + h[7] * y + 1.0;
        if w.abs() < 1e-9 {
            return None;
        }
        let px = (h[0] * x + h[1] * y + h[2]) / w;
        let py = (h[3] * x + h[4] * y + h[5]) / w;
        err += (px - u).powi(2) + (py - v).powi(2);
    }
    // Back to b's pixels.
    Some(((err / pa.len() as f64).sqrt() / sb) as f32)
}

#[allow(clippy::needless_range_loop)] // row operations on a small matrix
/// Gaussian elimination with partial pivoting on an 8x9 augmented matrix.
fn solve8(mut m: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for c in 0..8 {
        let p = (c..8).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))?;
        if m[p][c].abs() < 1e-12 {
            return None;
        }
        m.swap(c, p);
        for r in 0..8 {
            if r != c {
                let f = m[r][c] / m[c][c];
                for k in c..9 {
                    m[r][k] -= f * m[c][k];
                }
            }
        }
    }
    let mut x = [0f64; 8];
    for i in 0..8 {
        x[i] = m[i][8] / m[i][i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six keypoints of a head model (x right, y down, z towards the camera, eye distance 1):
    /// eyes, nose tip (in front), mouth, ears (behind).
    const HEAD: [[f32; 3]; 6] = [
        [-0.5, 0.0, 0.0],
        [0.5, 0.0, 0.0],
        [0.0, 0.45, 0.45],
        [0.0, 0.9, 0.05],
        [-0.95, 0.2, -0.8],
        [0.95, 0.2, -0.8],
    ];

    /// Turn by `yaw` (radians) about the vertical axis, project with focal 8 at distance 8.
    fn project(points: &[[f32; 3]], yaw: f32, flat: bool) -> Vec<Point> {
        points
            .iter()
            .map(|p| {
                let z0 = if flat { 0.0 } else { p[2] };
                let x = p[0] * yaw.cos() + z0 * yaw.sin();
                let z = -p[0] * yaw.sin() + z0 * yaw.cos();
                let d = 8.0 - z;
                Point {
                    x: 320.0 + 80.0 * 8.0 * x / d,
                    y: 240.0 + 80.0 * 8.0 * p[1] / d,
                }
            })
            .collect()
    }

    #[test]
    fn a_turning_photo_is_planar_and_a_turning_head_is_not() {
        let photo: Vec<Vec<Point>> = [0.0f32, 0.15, 0.3]
            .iter()
            .map(|&a| project(&HEAD, a, true))
            .collect();
        let head: Vec<Vec<Point>> = [0.0f32, 0.15, 0.3]
            .iter()
            .map(|&a| project(&HEAD, a, false))
            .collect();
        let mp = motion(&photo);
        let mh = motion(&head);
        assert!(mp.moved > 0.0 && mp.parallax < 1e-3, "{mp:?}");
        assert!(mh.moved > 0.1 && mh.parallax > 0.25 * mh.moved, "{mh:?}");
        assert!(
            mp.planar(0.01, 0.12) && !mh.planar(0.01, 0.12),
            "{mp:?} {mh:?}"
        );
        // Standing still: nothing moved, nothing to tell.
        let still = vec![project(&HEAD, 0.0, false); 3];
        let ms = motion(&still);
        assert!(ms.moved < 1e-4 && !ms.planar(0.01, 0.12), "{ms:?}");
        // A flat photo turned 17° moves only ~0.02 eye distances away from a similarity (the
        // foreshortening): about the detector keypoints' noise. The cue is weak in practice.
        assert!(mp.moved < 0.03, "{mp:?}");
    }
}
