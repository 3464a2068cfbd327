//! Face detection with BlazeFace in tract: letterbox, run, decode anchors, weighted NMS, map
//! boxes and landmarks back to frame pixels. Optionally a second, closer look at each face
//! (a window around it, upscaled to the detector's input) for better landmarks on small faces.

use image::RgbImage;
use serde::Serialize;
use tract_onnx::prelude::*;

use super::VisionError;
use super::model::{ModelCard, Plan, f32_values, input_tensor};
use super::resample::SquareView;

/// A point in frame pixels (continuous coordinates, pixel `i` spans `[i, i+1)`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// An axis-aligned box in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    pub fn centre(&self) -> Point {
        Point {
            x: self.x + self.w / 2.0,
            y: self.y + self.h / 2.0,
        }
    }

    pub fn iou(&self, o: &BBox) -> f32 {
        let ix = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let iy = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        inter / (self.area() + o.area() - inter)
    }
}

/// Landmark indices in [`Detection::landmarks`] (BlazeFace order).
pub mod landmark {
    /// The eye on the image's left (the subject's right eye).
    pub const LEFT_EYE: usize = 0;
    /// The eye on the image's right.
    pub const RIGHT_EYE: usize = 1;
    pub const NOSE: usize = 2;
    pub const MOUTH: usize = 3;
    pub const LEFT_EAR: usize = 4;
    pub const RIGHT_EAR: usize = 5;
}

/// One face found in a frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    pub bbox: BBox,
    /// Detector confidence in `[0, 1]`.
    pub score: f32,
    /// Image-left eye, image-right eye, nose tip, mouth centre, image-left ear, image-right ear.
    pub landmarks: Vec<Point>,
}

/// Detector settings (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectParams {
    /// Minimum confidence to keep a face.
    pub score_threshold: f32,
    /// Boxes overlapping more than this are merged (weighted NMS).
    pub nms_iou: f32,
    /// Faces narrower than this many frame pixels are dropped.
    pub min_face_px: f32,
    /// Take a second, closer look at each face (up to `refine_max_faces`) for better landmarks.
    pub refine: bool,
    pub refine_max_faces: usize,
    /// The closer look is taken only when it magnifies the face at least this much over the
    /// whole-frame view (the frame's long side over the closer look's window, 2.2 face
    /// widths); 1.0: whenever the window is smaller than the frame.
    pub refine_min_zoom: f32,
    /// Also search overlapping windows a third of the frame's long side for faces too small
    /// for the whole-frame view (group photos; 12 more detector runs on a 4:3 frame).
    pub small_faces: bool,
}

impl Default for DetectParams {
    fn default() -> Self {
        DetectParams {
            score_threshold: 0.7,
            nms_iou: 0.3,
            min_face_px: 24.0,
            refine: true,
            refine_max_faces: 4,
            refine_min_zoom: 1.0,
            small_faces: false,
        }
    }
}

/// How much frame, relative to the face box, the closer look sees.
const REFINE_EXTENT: f32 = 2.2;

/// How much the closer look would magnify a face found with `bbox` in a `width`×`height`
/// frame: the frame's long side over the closer look's window (2.2 face widths). At or below
/// `refine_min_zoom` (and always at or below 1) the closer look is skipped.
pub fn closer_look_zoom(width: u32, height: u32, bbox: &BBox) -> f32 {
    width.max(height) as f32 / (bbox.w.max(bbox.h) * REFINE_EXTENT)
}
/// Logits are clipped to this before the sigmoid (letterbox padding yields logits near 3e4).
const LOGIT_CLIP: f32 = 100.0;
/// Anchors at or above this score join the weighted average of their cluster, whatever the
/// acceptance threshold: averaging more anchors gives steadier landmarks (on LFW DevTest,
/// accepting at 0.7 but averaging only anchors above 0.7 cost 0.2 points of accuracy).
const CANDIDATE_SCORE: f32 = 0.5;

/// What the closer look at a face found.
enum CloserLook {
    /// The face again, with landmarks from the upscaled view.
    Confirmed(Detection),
    /// Nothing there: the first detection was not a face.
    NotFound,
    /// The face already fills the frame; there is nothing closer to look at.
    Skipped,
}

struct Candidate {
    /// x1, y1, x2, y2 in view pixels.
    corners: [f32; 4],
    score: f32,
    /// Keypoints in view pixels, x then y.
    keypoints: Vec<f32>,
}

/// BlazeFace (or another detector of the same family, described by its card).
pub struct Detector {
    card: ModelCard,
    state: TypedSimpleState,
    anchors: Vec<(f32, f32)>,
    keypoints: usize,
    /// Output index ranges: scores first, then regressors, one pair per anchor layer.
    layers: usize,
    pub params: DetectParams,
}

impl Detector {
    pub fn new(card: &ModelCard, plan: &Plan, params: DetectParams) -> Result<Self, VisionError> {
        let spec = card
            .detector
            .as_ref()
            .ok_or_else(|| VisionError::ModelCard {
                path: card.path.clone(),
                reason: "not a detector card".into(),
            })?;
        if spec.family != "blazeface" {
            return Err(VisionError::ModelCard {
                path: card.path.clone(),
                reason: format!(
                    "unknown detector family {:?} (known: blazeface)",
                    spec.family
                ),
            });
        }
        if spec.scores.len() != spec.anchor_layers.len()
            || spec.regressors.len() != spec.anchor_layers.len()
        {
            return Err(VisionError::ModelCard {
                path: card.path.clone(),
                reason: "scores, regressors and anchor_layers must have one entry per layer".into(),
            });
        }
        if card.input.width != card.input.height {
            return Err(VisionError::ModelCard {
                path: card.path.clone(),
                reason: "a blazeface detector takes a square input".into(),
            });
        }
        let mut anchors = Vec::new();
        for &[grid, per_cell] in &spec.anchor_layers {
            for y in 0..grid {
                for x in 0..grid {
                    let a = (
                        (x as f32 + 0.5) / grid as f32,
                        (y as f32 + 0.5) / grid as f32,
                    );
                    anchors.extend(std::iter::repeat_n(a, per_cell));
                }
            }
        }
        let state = TypedSimpleState::new(plan).map_err(|e| VisionError::ModelLoad {
            path: card.onnx_path(),
            reason: format!("{e:#}"),
        })?;
        Ok(Detector {
            card: card.clone(),
            state,
            anchors,
            keypoints: spec.keypoints,
            layers: spec.anchor_layers.len(),
            params,
        })
    }

    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Input side in pixels.
    pub fn side(&self) -> u32 {
        self.card.input.width as u32
    }

    /// All faces in the frame, largest first.
    pub fn detect(&mut self, frame: &RgbImage) -> Result<Vec<Detection>, VisionError> {
        let faces = self.detect_coarse(frame)?;
        self.refine(frame, faces)
    }

    /// The first step of [`Detector::detect`]: the faces of the whole-frame view (and of the
    /// small-face windows, when on), in the detector's order, before the closer look and the
    /// size limit.
    pub fn detect_coarse(&mut self, frame: &RgbImage) -> Result<Vec<Detection>, VisionError> {
        let view = SquareView::letterbox(frame.width(), frame.height(), self.side());
        let mut faces = self.detect_in(frame, &view)?;
        if self.params.small_faces {
            self.search_windows(frame, &mut faces)?;
        }
        Ok(faces)
    }

    /// The second step of [`Detector::detect`]: the closer look (when `refine` is on) at the
    /// faces of [`Detector::detect_coarse`], then the size limit, largest first.
    pub fn refine(
        &mut self,
        frame: &RgbImage,
        mut faces: Vec<Detection>,
    ) -> Result<Vec<Detection>, VisionError> {
        if self.params.refine {
            // A real face is found again in the closer look; a pattern that only looked like
            // one from afar usually is not, and is dropped.
            let mut kept = Vec::with_capacity(faces.len());
            for (i, face) in faces.into_iter().enumerate() {
                if i >= self.params.refine_max_faces {
                    kept.push(face);
                    continue;
                }
                match self.closer_look(frame, &face)? {
                    CloserLook::Confirmed(better) => kept.push(better),
                    CloserLook::Skipped => kept.push(face),
                    CloserLook::NotFound => {
                        tracing::debug!(
                            score = face.score,
                            "face not confirmed by the closer look, dropped"
                        )
                    }
                }
            }
            faces = kept;
        }
        faces.retain(|f| f.bbox.w >= self.params.min_face_px);
        faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
        Ok(faces)
    }

    /// Run the detector on one square view of the frame; faces in frame pixels.
    pub fn detect_in(
        &mut self,
        frame: &RgbImage,
        view: &SquareView,
    ) -> Result<Vec<Detection>, VisionError> {
        let pixels = view.render(frame);
        let input = input_tensor(&self.card, pixels.as_raw())?;
        let outputs = self
            .state
            .run(tvec!(input.into()))
            .map_err(|e| VisionError::Inference {
                model: self.card.name.clone(),
                reason: format!("{e:#}"),
            })?;
        let candidates = self.decode(&outputs)?;
        let mut merged = weighted_nms(candidates, self.params.nms_iou);
        merged.retain(|c| c.score >= self.params.score_threshold);
        let to_frame = |x: f32, y: f32| {
            let (fx, fy) = view.to_frame.apply(x, y);
            Point { x: fx, y: fy }
        };
        Ok(merged
            .into_iter()
            .map(|c| {
                let p1 = to_frame(c.corners[0], c.corners[1]);
                let p2 = to_frame(c.corners[2], c.corners[3]);
                Detection {
                    bbox: BBox {
                        x: p1.x,
                        y: p1.y,
                        w: p2.x - p1.x,
                        h: p2.y - p1.y,
                    },
                    score: c.score,
                    landmarks: c
                        .keypoints
                        .chunks_exact(2)
                        .map(|k| to_frame(k[0], k[1]))
                        .collect(),
                }
            })
            .collect())
    }

    /// Add the faces found in a grid of overlapping windows that are not already known: windows
    /// of a third of the frame's long side, overlapping by a third, so a face as small as
    /// ~1/20 of the frame fills a detectable part of one window.
    fn search_windows(
        &mut self,
        frame: &RgbImage,
        faces: &mut Vec<Detection>,
    ) -> Result<(), VisionError> {
        let (w, h) = (frame.width() as f32, frame.height() as f32);
        let extent = w.max(h) / 3.0;
        let step = extent * 2.0 / 3.0;
        let count = |len: f32| (((len - extent).max(0.0) / step).ceil() as usize) + 1;
        let (nx, ny) = (count(w), count(h));
        for gy in 0..ny {
            for gx in 0..nx {
                // Window centres spread so the windows cover the frame edge to edge.
                let spread = |len: f32, i: usize, n: usize| {
                    extent / 2.0
                        + if n > 1 {
                            (len - extent).max(0.0) * i as f32 / (n - 1) as f32
                        } else {
                            0.0
                        }
                };
                let (cx, cy) = (spread(w, gx, nx), spread(h, gy, ny));
                let view = SquareView::window(cx, cy, extent, self.side());
                for found in self.detect_in(frame, &view)? {
                    // A face cut by the window edge is found again, whole, by a neighbour.
                    let overlapping = faces
                        .iter_mut()
                        .find(|f| f.bbox.iou(&found.bbox) > self.params.nms_iou);
                    match overlapping {
                        Some(known) if known.score >= found.score => {}
                        Some(known) => *known = found,
                        None => faces.push(found),
                    }
                }
            }
        }
        Ok(())
    }

    /// Look again at a window around `face`, upscaled to the detector's input, for the face
    /// found there that best overlaps it.
    fn closer_look(
        &mut self,
        frame: &RgbImage,
        face: &Detection,
    ) -> Result<CloserLook, VisionError> {
        let c = face.bbox.centre();
        let extent = face.bbox.w.max(face.bbox.h) * REFINE_EXTENT;
        let view = SquareView::window(c.x, c.y, extent, self.side());
        // Only worth it when the window is smaller than the whole-frame view (by
        // `refine_min_zoom`).
        if closer_look_zoom(frame.width(), frame.height(), &face.bbox)
            <= self.params.refine_min_zoom.max(1.0)
        {
            return Ok(CloserLook::Skipped);
        }
        let found = self.detect_in(frame, &view)?;
        Ok(found
            .into_iter()
            .map(|d| (d.bbox.iou(&face.bbox), d))
            .filter(|(iou, _)| *iou > 0.3)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(CloserLook::NotFound, |(_, d)| CloserLook::Confirmed(d)))
    }

    fn decode(&self, outputs: &[TValue]) -> Result<Vec<Candidate>, VisionError> {
        let side = self.side() as f32;
        let regs_per_anchor = 4 + 2 * self.keypoints;
        let bad = |reason: String| VisionError::Inference {
            model: self.card.name.clone(),
            reason,
        };
        if outputs.len() != 2 * self.layers {
            return Err(bad(format!(
                "expected {} outputs, got {}",
                2 * self.layers,
                outputs.len()
            )));
        }
        let mut candidates = Vec::new();
        let mut anchor_base = 0;
        for layer in 0..self.layers {
            let scores = f32_values(&outputs[layer]).map_err(|e| bad(e.to_string()))?;
            let regs = f32_values(&outputs[self.layers + layer]).map_err(|e| bad(e.to_string()))?;
            if regs.len() != scores.len() * regs_per_anchor
                || anchor_base + scores.len() > self.anchors.len()
            {
                return Err(bad(format!(
                    "layer {layer}: {} scores and {} regressors do not match the card's anchors",
                    scores.len(),
                    regs.len()
                )));
            }
            for (i, &logit) in scores.iter().enumerate() {
                let score = sigmoid(logit.clamp(-LOGIT_CLIP, LOGIT_CLIP));
                if score < CANDIDATE_SCORE.min(self.params.score_threshold) {
                    continue;
                }
                let (ax, ay) = self.anchors[anchor_base + i];
                let r = &regs[i * regs_per_anchor..(i + 1) * regs_per_anchor];
                let cx = (r[0] / side + ax) * side;
                let cy = (r[1] / side + ay) * side;
                let (w, h) = (r[2], r[3]);
                let keypoints = (0..self.keypoints)
                    .flat_map(|k| {
                        [
                            (r[4 + 2 * k] / side + ax) * side,
                            (r[5 + 2 * k] / side + ay) * side,
                        ]
                    })
                    .collect();
                candidates.push(Candidate {
                    corners: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                    score,
                    keypoints,
                });
            }
            anchor_base += scores.len();
        }
        Ok(candidates)
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn corners_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = a[2].min(b[2]) - a[0].max(b[0]);
    let iy = a[3].min(b[3]) - a[1].max(b[1]);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    let inter = ix * iy;
    let area = |c: &[f32; 4]| (c[2] - c[0]) * (c[3] - c[1]);
    inter / (area(a) + area(b) - inter)
}

/// Weighted non-maximum suppression: each cluster of boxes overlapping the best remaining one
/// becomes one face whose box and keypoints are the score-weighted mean of the cluster, with
/// the best box's score.
fn weighted_nms(mut candidates: Vec<Candidate>, iou_threshold: f32) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    let mut used = vec![false; candidates.len()];
    for i in 0..candidates.len() {
        if used[i] {
            continue;
        }
        let top = &candidates[i];
        let mut total = 0.0;
        let mut corners = [0.0f32; 4];
        let mut keypoints = vec![0.0f32; top.keypoints.len()];
        for j in i..candidates.len() {
            if used[j] || corners_iou(&top.corners, &candidates[j].corners) < iou_threshold {
                continue;
            }
            used[j] = true;
            let c = &candidates[j];
            total += c.score;
            for (acc, v) in corners.iter_mut().zip(c.corners) {
                *acc += v * c.score;
            }
            for (acc, v) in keypoints.iter_mut().zip(&c.keypoints) {
                *acc += v * c.score;
            }
        }
        corners.iter_mut().for_each(|v| *v /= total);
        keypoints.iter_mut().for_each(|v| *v /= total);
        out.push(Candidate {
            corners,
            score: top.score,
            keypoints,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(x: f32, score: f32) -> Candidate {
        Candidate {
            corners: [x, 0.0, x + 10.0, 10.0],
            score,
            keypoints: vec![x, 5.0],
        }
    }

    #[test]
    fn weighted_nms_merges_overlaps_and_keeps_separate_faces() {
        let out = weighted_nms(vec![cand(0.0, 0.9), cand(1.0, 0.6), cand(50.0, 0.7)], 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        // Weighted mean of x=0 (0.9) and x=1 (0.6) is 0.4.
        assert!((out[0].corners[0] - 0.4).abs() < 1e-5);
        assert!((out[0].keypoints[0] - 0.4).abs() < 1e-5);
        assert_eq!(out[1].corners[0], 50.0);
    }

    #[test]
    fn iou_of_disjoint_and_identical_boxes() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        let b = BBox {
            x: 20.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        assert_eq!(a.iou(&b), 0.0);
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
    }
}
