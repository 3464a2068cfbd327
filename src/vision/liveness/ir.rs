//! The infrared check (`liveness.ir`): a second camera that sees in near infrared (a NoIR
//! camera beside an infrared light) must see the face too, at the same place, and lit.
//!
//! A phone screen gives off almost no near infrared, so a face replayed on a screen is dark
//! in the infrared frame; a live face reflects the infrared light. A printed photo reflects it
//! as well and looks like a grey face: **this check stops screens, not prints** (the passive
//! network, the cues and the head-turn challenge are the defence against prints).
//!
//! For the face a decision is about, in one colour frame: take the infrared frame captured
//! nearest in time (refused when none is within `liveness.ir_max_skew_ms`: "no infrared
//! picture"), map the face's box into it with the registration (`[camera.ir]` scale and
//! offset), require that box to be lit (mean and standard deviation of its luma above
//! `ir_min_mean` and `ir_min_contrast`: else "face dark in infrared") and the detector to find
//! a face there (IoU with the mapped box at least `ir_min_iou`: else "no face in infrared").
//! [`IrVisit`] keeps the outcomes of a visit's frames: the visit passes when more than half of
//! its frames pass.

use std::collections::VecDeque;
use std::time::Duration;

use image::RgbImage;
use serde::Serialize;

use super::config::{LivenessConfig, Mode};
use crate::camera::ir::IrCameraConfig;
use crate::vision::VisionError;
use crate::vision::detect::{BBox, Detection};

/// Where the colour picture falls in the infrared one: the colour pixel (x, y) is at
/// (scale·x + offset_x, scale·y + offset_y).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Registration {
    pub scale: f32,
    pub offset_x: f32,
    pub offset_y: f32,
}

impl Default for Registration {
    fn default() -> Self {
        Registration {
            scale: 1.0,
            offset_x: 0.0,
            offset_y: 0.0,
        }
    }
}

impl Registration {
    /// A colour frame's box in infrared frame coordinates.
    pub fn map(&self, b: &BBox) -> BBox {
        BBox {
            x: self.scale * b.x + self.offset_x,
            y: self.scale * b.y + self.offset_y,
            w: self.scale * b.w,
            h: self.scale * b.h,
        }
    }
}

/// The settings of the infrared check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IrParams {
    pub registration: Registration,
    /// The infrared frame must be this close in time to the colour frame.
    pub max_skew: Duration,
    pub min_iou: f32,
    pub min_mean: f32,
    pub min_contrast: f32,
}

impl IrParams {
    pub fn from_config(l: &LivenessConfig, c: &IrCameraConfig) -> IrParams {
        IrParams {
            registration: Registration {
                scale: c.scale,
                offset_x: c.offset_x,
                offset_y: c.offset_y,
            },
            max_skew: Duration::from_millis(l.ir_max_skew_ms),
            min_iou: l.ir_min_iou,
            min_mean: l.ir_min_mean,
            min_contrast: l.ir_min_contrast,
        }
    }
}

impl Default for IrParams {
    fn default() -> Self {
        IrParams::from_config(&LivenessConfig::default(), &IrCameraConfig::default())
    }
}

/// What the infrared frame says about one face.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "ir", rename_all = "snake_case")]
pub enum IrOutcome {
    /// Found, lit, at the same place: passes.
    Seen { iou: f32, mean: f32, contrast: f32 },
    /// No infrared frame close enough in time (`skew_ms`: the nearest one's distance; none
    /// when the camera has delivered nothing lately).
    NoFrame { skew_ms: Option<u64> },
    /// The face's place in the infrared frame is dark or flat (a screen).
    Dark { mean: f32, contrast: f32 },
    /// No face there in infrared (`iou`: the best overlap of a face the detector found), or
    /// the mapped box falls mostly outside the infrared frame.
    NoFace { iou: f32 },
}

impl IrOutcome {
    pub fn passed(&self) -> bool {
        matches!(self, IrOutcome::Seen { .. })
    }

    /// The refusal's detail, for the display and the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            IrOutcome::Seen { .. } => "seen in infrared",
            IrOutcome::NoFrame { .. } => "no infrared picture",
            IrOutcome::Dark { .. } => "face dark in infrared",
            IrOutcome::NoFace { .. } => "no face in infrared",
        }
    }
}

/// Brightness of a box of an image: mean and standard deviation of the luma (0..255).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Light {
    pub mean: f32,
    pub contrast: f32,
    /// Share of the box inside the image (0..1).
    pub inside: f32,
}

/// The luma statistics of the central 80% of box `b` (the face, not the background at its
/// edges), clipped to the image.
pub fn light(img: &RgbImage, b: &BBox) -> Light {
    let (iw, ih) = (img.width() as f32, img.height() as f32);
    let inner = BBox {
        x: b.x + 0.1 * b.w,
        y: b.y + 0.1 * b.h,
        w: 0.8 * b.w,
        h: 0.8 * b.h,
    };
    let x0 = inner.x.max(0.0);
    let y0 = inner.y.max(0.0);
    let x1 = (inner.x + inner.w).min(iw);
    let y1 = (inner.y + inner.h).min(ih);
    if x1 <= x0 || y1 <= y0 || inner.area() <= 0.0 {
        return Light {
            mean: 0.0,
            contrast: 0.0,
            inside: 0.0,
        };
    }
    let inside = (x1 - x0) * (y1 - y0) / inner.area();
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    for y in (y0 as u32)..(y1.ceil() as u32).min(img.height()) {
        for x in (x0 as u32)..(x1.ceil() as u32).min(img.width()) {
            let p = img.get_pixel(x, y).0;
            let l = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            n += 1.0;
            sum += l;
            sq += l * l;
        }
    }
    let mean = sum / n.max(1.0);
    let var = (sq / n.max(1.0) - mean * mean).max(0.0);
    Light {
        mean: mean as f32,
        contrast: var.sqrt() as f32,
        inside,
    }
}

/// Check the colour frame's face `face` against `ir`, the infrared frame nearest in time and
/// its distance in time from the colour frame (`None`: no infrared frame at all). `detect`
/// finds the faces of the infrared frame; it is only run when the box is lit.
pub fn check(
    params: &IrParams,
    face: &BBox,
    ir: Option<(&RgbImage, Duration)>,
    detect: impl FnOnce(&RgbImage) -> Result<Vec<Detection>, VisionError>,
) -> Result<IrOutcome, VisionError> {
    let Some((img, skew)) = ir else {
        return Ok(IrOutcome::NoFrame { skew_ms: None });
    };
    if skew > params.max_skew {
        return Ok(IrOutcome::NoFrame {
            skew_ms: Some(u64::try_from(skew.as_millis()).unwrap_or(u64::MAX)),
        });
    }
    let mapped = params.registration.map(face);
    let lit = light(img, &mapped);
    if lit.inside < 0.5 {
        return Ok(IrOutcome::NoFace { iou: 0.0 });
    }
    if lit.mean < params.min_mean || lit.contrast < params.min_contrast {
        return Ok(IrOutcome::Dark {
            mean: lit.mean,
            contrast: lit.contrast,
        });
    }
    let iou = detect(img)?
        .iter()
        .map(|d| d.bbox.iou(&mapped))
        .fold(0.0f32, f32::max);
    Ok(if iou >= params.min_iou {
        IrOutcome::Seen {
            iou,
            mean: lit.mean,
            contrast: lit.contrast,
        }
    } else {
        IrOutcome::NoFace { iou }
    })
}

/// The infrared outcomes of one visit's frames (the newest `window`).
#[derive(Debug, Clone)]
pub struct IrVisit {
    outcomes: VecDeque<IrOutcome>,
    window: usize,
}

impl IrVisit {
    pub fn new(window: usize) -> IrVisit {
        IrVisit {
            outcomes: VecDeque::new(),
            window: window.max(1),
        }
    }

    pub fn push(&mut self, o: IrOutcome) {
        if self.outcomes.len() == self.window {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(o);
    }

    pub fn reset(&mut self) {
        self.outcomes.clear();
    }

    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// `None` when more than half of the visit's frames passed; else the most frequent
    /// failure (ties: the one seen last). A visit with no frame checked fails as "no infrared
    /// picture".
    pub fn failure(&self) -> Option<IrOutcome> {
        let passed = self.outcomes.iter().filter(|o| o.passed()).count();
        if passed * 2 > self.outcomes.len() {
            return None;
        }
        let count = |o: &IrOutcome| {
            self.outcomes
                .iter()
                .filter(|x| std::mem::discriminant(*x) == std::mem::discriminant(o))
                .count()
        };
        let mut worst: Option<(usize, IrOutcome)> = None;
        for o in self.outcomes.iter().filter(|o| !o.passed()) {
            let n = count(o);
            if worst.is_none_or(|(m, _)| n >= m) {
                worst = Some((n, *o));
            }
        }
        Some(worst.map_or(IrOutcome::NoFrame { skew_ms: None }, |(_, o)| o))
    }

    /// Why the visit is refused in `mode`: only when enforcing and it failed.
    pub fn refusal(&self, mode: Mode) -> Option<String> {
        match mode {
            Mode::Enforce => self.failure().map(|f| f.reason().to_owned()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A "synthetic infrared" frame (a stand-in, not a real infrared picture): a grey scene
    /// with a lit, textured oval where a face would be at `face`, or that oval dark (a phone
    /// screen) when `dark`.
    fn synthetic(face: &BBox, dark: bool) -> RgbImage {
        RgbImage::from_fn(320, 240, |x, y| {
            let (cx, cy) = (face.x + face.w / 2.0, face.y + face.h / 2.0);
            let dx = (x as f32 - cx) / (face.w / 2.0);
            let dy = (y as f32 - cy) / (face.h / 2.0);
            if dx * dx + dy * dy <= 1.0 {
                if dark {
                    Rgb([6; 3])
                } else {
                    let v = 120.0 + 50.0 * ((x as f32 * 0.4).sin() * (y as f32 * 0.3).cos());
                    Rgb([v as u8; 3])
                }
            } else {
                Rgb([70; 3])
            }
        })
    }

    fn det(b: BBox) -> Detection {
        Detection {
            bbox: b,
            score: 0.9,
            landmarks: Vec::new(),
        }
    }

    const FACE: BBox = BBox {
        x: 100.0,
        y: 60.0,
        w: 80.0,
        h: 100.0,
    };
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_lit_face_at_the_mapped_place_passes() {
        let p = IrParams::default();
        let img = synthetic(&FACE, false);
        let o = check(&p, &FACE, Some((&img, MS(20))), |_| Ok(vec![det(FACE)])).unwrap();
        assert!(o.passed(), "{o:?}");
        let IrOutcome::Seen {
            iou,
            mean,
            contrast,
        } = o
        else {
            unreachable!()
        };
        assert!(iou > 0.99 && mean > 80.0 && contrast > 15.0, "{o:?}");
    }

    #[test]
    fn a_dark_face_place_is_refused_without_running_the_detector() {
        let p = IrParams::default();
        let img = synthetic(&FACE, true);
        let o = check(&p, &FACE, Some((&img, MS(20))), |_| {
            panic!("the detector is not needed for a dark box")
        })
        .unwrap();
        assert!(
            matches!(o, IrOutcome::Dark { mean, .. } if mean < 20.0),
            "{o:?}"
        );
        assert_eq!(o.reason(), "face dark in infrared");
    }

    #[test]
    fn a_face_elsewhere_or_nowhere_is_no_face() {
        let p = IrParams::default();
        let img = synthetic(&FACE, false);
        // Lit, but the detector finds the face 60 px to the right: misplaced.
        let elsewhere = BBox {
            x: FACE.x + 60.0,
            ..FACE
        };
        let o = check(&p, &FACE, Some((&img, MS(0))), |_| Ok(vec![det(elsewhere)])).unwrap();
        assert!(matches!(o, IrOutcome::NoFace { iou } if iou < 0.4), "{o:?}");
        assert_eq!(o.reason(), "no face in infrared");
        let o = check(&p, &FACE, Some((&img, MS(0))), |_| Ok(vec![])).unwrap();
        assert_eq!(o, IrOutcome::NoFace { iou: 0.0 });
        // A wrong registration maps the box off the infrared frame.
        let off = IrParams {
            registration: Registration {
                scale: 1.0,
                offset_x: 400.0,
                offset_y: 0.0,
            },
            ..p
        };
        let o = check(&off, &FACE, Some((&img, MS(0))), |_| Ok(vec![det(FACE)])).unwrap();
        assert_eq!(o, IrOutcome::NoFace { iou: 0.0 });
    }

    #[test]
    fn the_registration_maps_the_box_into_the_infrared_frame() {
        // An infrared camera at half the resolution, 10 px lower.
        let p = IrParams {
            registration: Registration {
                scale: 0.5,
                offset_x: 0.0,
                offset_y: 10.0,
            },
            ..IrParams::default()
        };
        let colour = BBox {
            x: 200.0,
            y: 100.0,
            w: 160.0,
            h: 200.0,
        };
        let mapped = p.registration.map(&colour);
        assert_eq!(mapped, FACE);
        let img = synthetic(&FACE, false);
        let o = check(&p, &colour, Some((&img, MS(0))), |_| Ok(vec![det(FACE)])).unwrap();
        assert!(o.passed(), "{o:?}");
    }

    #[test]
    fn a_stale_or_missing_infrared_frame_is_refused() {
        let p = IrParams::default();
        let img = synthetic(&FACE, false);
        let o = check(&p, &FACE, Some((&img, MS(400))), |_| Ok(vec![det(FACE)])).unwrap();
        assert_eq!(o, IrOutcome::NoFrame { skew_ms: Some(400) });
        assert_eq!(o.reason(), "no infrared picture");
        let o = check(&p, &FACE, None, |_| Ok(vec![det(FACE)])).unwrap();
        assert_eq!(o, IrOutcome::NoFrame { skew_ms: None });
        // Just within the limit.
        let o = check(&p, &FACE, Some((&img, MS(150))), |_| Ok(vec![det(FACE)])).unwrap();
        assert!(o.passed());
    }

    #[test]
    fn a_visit_passes_on_a_majority_and_says_its_most_frequent_failure() {
        let seen = IrOutcome::Seen {
            iou: 0.8,
            mean: 100.0,
            contrast: 30.0,
        };
        let dark = IrOutcome::Dark {
            mean: 5.0,
            contrast: 1.0,
        };
        let mut v = IrVisit::new(5);
        assert_eq!(
            v.refusal(Mode::Enforce).as_deref(),
            Some("no infrared picture")
        );
        v.push(dark);
        v.push(seen);
        v.push(seen);
        assert_eq!(v.failure(), None);
        assert_eq!(v.refusal(Mode::Enforce), None);
        v.push(dark);
        // 2 of 4: not more than half.
        assert_eq!(v.failure(), Some(dark));
        v.push(IrOutcome::NoFace { iou: 0.1 });
        v.push(dark);
        // The window keeps the newest 5: seen, seen, dark, no face, dark.
        assert_eq!(v.len(), 5);
        assert_eq!(
            v.refusal(Mode::Enforce).as_deref(),
            Some("face dark in infrared")
        );
        assert_eq!(v.refusal(Mode::Warn), None);
        v.reset();
        assert!(v.is_empty());
    }
}
