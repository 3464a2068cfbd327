//! The active head-turn challenge (`[liveness] challenge = "turn"`): the door asks the person
//! to turn the head to one side, chosen at random for each visit (a recording cannot know it
//! in advance), and admits only when the 68-point landmarks ([`super::landmarks`]) show that
//! turn with the parallax of a real head.
//!
//! Two measures of each frame against the frame where the turn was asked (the baseline):
//!
//! - **the turn**: how far the nose tip moved sideways relative to the line between the ears
//!   (the jaw's outer points 0 and 16), along the eye line, per ear-to-ear width. The nose
//!   is in front of that line, the ears behind it, so a head turning moves the nose across the
//!   face; a photo shifted, zoomed, turned in-plane or even turned in the hand (an affine or
//!   projective map of one plane) keeps that ratio (up to perspective), so it shows no turn.
//! - **the parallax** ([`super::motion`]): what the best homography leaves unexplained of the
//!   landmarks' motion (RMS, eye distances), against what a similarity leaves (`moved`). A
//!   flat picture moves as one plane: whatever it moved, a homography explains it.
//!
//! Passed: a turn of at least [`TurnParams::min_turn`] towards the asked side with parallax
//! of at least [`TurnParams::min_parallax`] and a share [`TurnParams::min_parallax_share`] of
//! the motion. Refused when the time is up: "turn looked like a flat picture" when the face
//! moved clearly but as a plane, else "head turn not seen" (none, or the wrong way).

use serde::Serialize;

use super::motion::{homography_residual, similarity_residual};
use crate::vision::detect::Point;

/// The side the person is asked to turn to: their own left or right. With a camera that does
/// not mirror the picture, the person's left is the image's right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

impl Side {
    /// A side chosen at random (the operating system's random source).
    pub fn random() -> Side {
        let mut b = [0u8; 1];
        match getrandom::fill(&mut b) {
            Ok(()) if b[0] & 1 == 0 => Side::Left,
            Ok(()) => Side::Right,
            // No random source: the nanoseconds of the clock are still not guessable in
            // advance to a recording.
            Err(_) => {
                let ns = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                if ns & 1 == 0 { Side::Left } else { Side::Right }
            }
        }
    }

    pub fn opposite(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }

    /// The sign of the nose's sideways motion (image x) when turning to this side.
    fn sign(self) -> f32 {
        match self {
            Side::Left => 1.0,
            Side::Right => -1.0,
        }
    }
}

/// iBUG 68-point indices the challenge reads.
pub mod idx {
    /// Outer jaw points at ear height: the person's right (image left), left (image right).
    pub const JAW_RIGHT: usize = 0;
    pub const JAW_LEFT: usize = 16;
    pub const NOSE_TIP: usize = 30;
    pub const RIGHT_EYE: std::ops::Range<usize> = 36..42;
    pub const LEFT_EYE: std::ops::Range<usize> = 42..48;
    /// The points the plane test fits: jaw every 4th point, nose bridge and base, eye corners,
    /// mouth corners and middle (the steadier points of the model).
    pub const PLANE: [usize; 19] = [
        0, 4, 8, 12, 16, 27, 30, 31, 33, 35, 36, 39, 42, 45, 48, 51, 54, 57, 62,
    ];
}

fn centre(p: &[Point]) -> Point {
    let n = p.len().max(1) as f32;
    Point {
        x: p.iter().map(|q| q.x).sum::<f32>() / n,
        y: p.iter().map(|q| q.y).sum::<f32>() / n,
    }
}

/// Eye centres and the eye distance of 68 landmarks; `None` when fewer points or degenerate.
fn eyes(p: &[Point]) -> Option<(Point, Point, f32)> {
    if p.len() < 68 {
        return None;
    }
    let (r, l) = (centre(&p[idx::RIGHT_EYE]), centre(&p[idx::LEFT_EYE]));
    let d = ((l.x - r.x).powi(2) + (l.y - r.y).powi(2)).sqrt();
    (d >= 1.0).then_some((r, l, d))
}

/// The yaw index of one face: the nose tip's offset from the middle of the ear line, along
/// the eye line (from the person's right eye to their left), per ear-to-ear width. About 0
/// facing the camera; positive when the nose is towards the image's right (the person turned
/// to their left, camera not mirrored).
pub fn yaw_index(p: &[Point]) -> Option<f32> {
    let (r, l, d) = eyes(p)?;
    let (ux, uy) = ((l.x - r.x) / d, (l.y - r.y) / d);
    let (a, b) = (p[idx::JAW_RIGHT], p[idx::JAW_LEFT]);
    let width = (b.x - a.x) * ux + (b.y - a.y) * uy;
    if width < 1.0 {
        return None;
    }
    let mid = Point {
        x: (a.x + b.x) / 2.0,
        y: (a.y + b.y) / 2.0,
    };
    let n = p[idx::NOSE_TIP];
    Some(((n.x - mid.x) * ux + (n.y - mid.y) * uy) / width)
}

/// One frame against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct TurnMeasure {
    /// Change of the yaw index towards the asked side (negative: the other way).
    pub turn: f32,
    /// What a similarity leaves of the landmarks' motion (RMS, eye distances).
    pub moved: f32,
    /// What the best homography leaves (RMS, eye distances): the parallax.
    pub parallax: f32,
}

/// Measure `now` against `baseline` for a turn to `side`; `None` when either has no usable
/// 68 landmarks.
pub fn measure(side: Side, baseline: &[Point], now: &[Point]) -> Option<TurnMeasure> {
    let (y0, y1) = (yaw_index(baseline)?, yaw_index(now)?);
    let (_, _, d0) = eyes(baseline)?;
    let (_, _, d1) = eyes(now)?;
    let unit = 0.5 * (d0 + d1);
    let a: Vec<Point> = idx::PLANE.iter().map(|&i| baseline[i]).collect();
    let b: Vec<Point> = idx::PLANE.iter().map(|&i| now[i]).collect();
    let moved = similarity_residual(&a, &b) / unit;
    let parallax = homography_residual(&a, &b).map_or(moved, |r| r / unit);
    Some(TurnMeasure {
        turn: side.sign() * (y1 - y0),
        moved,
        parallax,
    })
}

/// Thresholds of the turn test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TurnParams {
    /// Change of the yaw index towards the asked side that counts as a turn.
    pub min_turn: f32,
    /// Parallax (eye distances) a real head's turn leaves at least, above the landmarks' noise.
    pub min_parallax: f32,
    /// And at least this share of the non-similarity motion.
    pub min_parallax_share: f32,
    /// Non-similarity motion (eye distances) that counts as "moved clearly" (for the reason
    /// "turn looked like a flat picture").
    pub min_moved: f32,
}

/// The shipped thresholds (see the tests and the README, "Liveness": chosen from the geometry
/// of a head model and checked on ORL pose photos, which stand in for a real head turn).
pub const TURN: TurnParams = TurnParams {
    min_turn: 0.08,
    min_parallax: 0.03,
    min_parallax_share: 0.3,
    min_moved: 0.03,
};

impl TurnParams {
    /// The frame shows the asked turn, not explained by one plane.
    pub fn passes(&self, m: &TurnMeasure) -> bool {
        m.turn >= self.min_turn && self.non_planar(m)
    }

    fn non_planar(&self, m: &TurnMeasure) -> bool {
        m.parallax >= self.min_parallax && m.parallax >= self.min_parallax_share * m.moved
    }

    /// Moved clearly, and as one plane.
    pub fn flat(&self, m: &TurnMeasure) -> bool {
        m.moved >= self.min_moved && !self.non_planar(m)
    }
}

/// Why a challenge failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// No turn to the asked side (none, or the other way).
    NotSeen,
    /// The face moved, but as one plane: a picture.
    Flat,
    /// Another face came in front of the camera during the challenge.
    OtherFace,
}

impl Failure {
    /// The refusal's reason, as shown and audited.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::NotSeen => "head turn not seen",
            Failure::Flat => "turn looked like a flat picture",
            Failure::OtherFace => "another face during the head turn",
        }
    }
}

/// One visit's head-turn challenge.
#[derive(Debug, Clone)]
pub struct TurnCheck {
    pub side: Side,
    params: TurnParams,
    baseline: Option<Vec<Point>>,
    /// The frame that turned most towards the asked side so far.
    pub best: Option<TurnMeasure>,
    flat_seen: bool,
    passed: bool,
}

impl TurnCheck {
    /// A challenge to turn to `side`; `baseline` is the face's landmarks when it was asked
    /// (else the next frame with landmarks becomes the baseline).
    pub fn new(side: Side, params: TurnParams, baseline: Option<Vec<Point>>) -> TurnCheck {
        TurnCheck {
            side,
            params,
            baseline: baseline.filter(|b| yaw_index(b).is_some()),
            best: None,
            flat_seen: false,
            passed: false,
        }
    }

    /// Add a frame's landmarks; `true` once the asked turn was seen.
    pub fn frame(&mut self, points: &[Point]) -> bool {
        if self.passed {
            return true;
        }
        let Some(base) = &self.baseline else {
            if yaw_index(points).is_some() {
                self.baseline = Some(points.to_vec());
            }
            return false;
        };
        let Some(m) = measure(self.side, base, points) else {
            return false;
        };
        tracing::trace!(
            turn = m.turn,
            moved = m.moved,
            parallax = m.parallax,
            "turn"
        );
        if self.best.is_none_or(|b| m.turn > b.turn) {
            self.best = Some(m);
        }
        self.flat_seen |= self.params.flat(&m);
        self.passed = self.params.passes(&m);
        self.passed
    }

    pub fn passed(&self) -> bool {
        self.passed
    }

    /// Why it failed (when the time is up and it did not pass).
    pub fn failure(&self) -> Failure {
        if self.flat_seen {
            Failure::Flat
        } else {
            Failure::NotSeen
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 68-point head model (x right in the image, y down, z towards the camera; eye
    /// distance 1): the points the challenge reads at plausible depths, the others on the
    /// face plane. The person's right is the image's left (camera not mirrored).
    fn head() -> Vec<[f32; 3]> {
        let mut p = vec![[0.0f32, 0.3, 0.0]; 68];
        // Jaw 0..16: from the right ear round the chin to the left ear, behind the face.
        for (i, q) in p.iter_mut().enumerate().take(17) {
            let a = std::f32::consts::PI * (i as f32 / 16.0);
            *q = [-a.cos(), 0.1 + 1.1 * a.sin(), -0.8 * a.cos().abs()];
        }
        for (k, q) in p[27..31].iter_mut().enumerate() {
            let t = k as f32 / 3.0;
            *q = [0.0, 0.05 + 0.4 * t, 0.15 + 0.35 * t];
        }
        for (k, i) in (31..36).enumerate() {
            p[i] = [-0.2 + 0.1 * k as f32, 0.5, 0.3];
        }
        for (k, i) in (36..42).enumerate() {
            let a = std::f32::consts::TAU * k as f32 / 6.0;
            p[i] = [-0.5 + 0.15 * a.cos(), 0.05 * a.sin(), 0.0];
        }
        for (k, i) in (42..48).enumerate() {
            let a = std::f32::consts::TAU * k as f32 / 6.0;
            p[i] = [0.5 + 0.15 * a.cos(), 0.05 * a.sin(), 0.0];
        }
        for (k, i) in (48..68).enumerate() {
            let a = std::f32::consts::TAU * k as f32 / 20.0;
            p[i] = [0.35 * a.cos(), 0.85 + 0.1 * a.sin(), 0.1];
        }
        p
    }

    /// Turn by `yaw` radians about the vertical axis (positive: the person's left), the photo
    /// flat (every depth 0) or a head; then shift, zoom and roll in the image; perspective
    /// with focal 8 at distance 8, 80 px per eye distance.
    fn project(yaw: f32, flat: bool, shift: (f32, f32), zoom: f32, roll: f32) -> Vec<Point> {
        head()
            .iter()
            .map(|p| {
                let z0 = if flat { 0.0 } else { p[2] };
                // A turn to the person's left brings their nose towards the image's right.
                let x = p[0] * yaw.cos() + z0 * yaw.sin();
                let z = -p[0] * yaw.sin() + z0 * yaw.cos();
                let d = 8.0 - z;
                let (u, v) = (80.0 * 8.0 * x / d * zoom, 80.0 * 8.0 * p[1] / d * zoom);
                let (c, s) = (roll.cos(), roll.sin());
                Point {
                    x: 320.0 + shift.0 + c * u - s * v,
                    y: 240.0 + shift.1 + s * u + c * v,
                }
            })
            .collect()
    }

    #[test]
    fn a_head_turning_to_the_asked_side_passes_and_a_picture_does_not() {
        let front = project(0.0, false, (0.0, 0.0), 1.0, 0.0);
        assert!(yaw_index(&front).unwrap().abs() < 1e-3);
        // A head turned 20° to its left: nose to the image's right, with parallax.
        let left = project(0.35, false, (10.0, 0.0), 1.05, 0.03);
        let m = measure(Side::Left, &front, &left).unwrap();
        assert!(TURN.passes(&m), "{m:?}");
        // The same turn when the right was asked: refused, and not as a picture.
        let m = measure(Side::Right, &front, &left).unwrap();
        assert!(!TURN.passes(&m) && m.turn < -TURN.min_turn, "{m:?}");
        assert!(!TURN.flat(&m), "{m:?}");

        // A photo of the frontal face moved, zoomed and rolled in-plane: no turn, no motion
        // beyond a similarity.
        let photo = project(0.0, true, (0.0, 0.0), 1.0, 0.0);
        let moved = project(0.0, true, (-40.0, 25.0), 1.3, 0.25);
        let m = measure(Side::Left, &photo, &moved).unwrap();
        assert!(
            !TURN.passes(&m) && m.turn.abs() < 1e-3 && m.moved < 1e-3,
            "{m:?}"
        );
        // The photo turned 40° in the hand: it moved clearly, as one plane.
        for side in [Side::Left, Side::Right] {
            let turned = project(0.7 * side.sign(), true, (5.0, 0.0), 1.0, 0.0);
            let m = measure(side, &photo, &turned).unwrap();
            assert!(!TURN.passes(&m), "{m:?}");
            assert!(TURN.flat(&m), "{m:?}");
            // Perspective magnifies the near half a little: a small apparent turn (0.040 at
            // 40° this close: half the threshold), and no parallax.
            assert!(m.turn.abs() < TURN.min_turn && m.parallax < 1e-3, "{m:?}");
        }
    }

    #[test]
    fn the_check_keeps_the_best_frame_and_says_why_it_failed() {
        let front = project(0.0, false, (0.0, 0.0), 1.0, 0.0);
        let mut c = TurnCheck::new(Side::Right, TURN, Some(front.clone()));
        assert!(!c.frame(&front));
        assert_eq!(c.failure(), Failure::NotSeen);
        // Turning the wrong way does not pass, nor does it look flat.
        assert!(!c.frame(&project(0.4, false, (0.0, 0.0), 1.0, 0.0)));
        assert_eq!(c.failure(), Failure::NotSeen);
        assert!(c.frame(&project(-0.4, false, (0.0, 0.0), 1.0, 0.0)));
        assert!(c.passed() && c.best.unwrap().turn > TURN.min_turn);

        // A photo: the baseline is taken from the first frame when none was given.
        let photo = project(0.0, true, (0.0, 0.0), 1.0, 0.0);
        let mut c = TurnCheck::new(Side::Left, TURN, None);
        assert!(!c.frame(&photo));
        for yaw in [0.2f32, 0.4, 0.6, -0.6] {
            assert!(!c.frame(&project(yaw, true, (0.0, 0.0), 1.0, 0.0)));
        }
        assert_eq!(c.failure(), Failure::Flat);
        assert_eq!(Failure::Flat.reason(), "turn looked like a flat picture");
        // Too few points: not measured.
        assert!(measure(Side::Left, &front[..10], &front).is_none());
        assert_ne!(Side::Left.opposite(), Side::Left);
    }
}
