//! The passive liveness network: the face box enlarged around its centre (as the model card
//! says), resized to the network's input, and the softmax of its logits.

use image::RgbImage;
use tract_onnx::prelude::*;

use crate::vision::VisionError;
use crate::vision::detect::BBox;
use crate::vision::model::{ModelCard, Plan, f32_values, input_tensor};
use crate::vision::resample::{Affine, warp_into};

/// The crop rectangle `(left, top, width, height)` in frame pixels: `bbox` enlarged `scale`
/// times around its centre, the scale reduced so that it fits the frame, then shifted inside
/// it (the package's `alignLivenessImage`, which the network was shipped with).
pub fn crop_rect(bbox: &BBox, width: u32, height: u32, scale: f32) -> (f32, f32, f32, f32) {
    let (w, h) = (width as f32, height as f32);
    let (bw, bh) = (bbox.w.max(1.0), bbox.h.max(1.0));
    let s = scale.min((h - 1.0) / bh).min((w - 1.0) / bw).max(0.0);
    let (nw, nh) = (bw * s, bh * s);
    let c = bbox.centre();
    let (mut l, mut t) = (c.x - nw / 2.0, c.y - nh / 2.0);
    let (mut r, mut b) = (c.x + nw / 2.0, c.y + nh / 2.0);
    if l < 0.0 {
        r -= l;
        l = 0.0;
    }
    if t < 0.0 {
        b -= t;
        t = 0.0;
    }
    if r > w - 1.0 {
        l -= r - w + 1.0;
        r = w - 1.0;
    }
    if b > h - 1.0 {
        t -= b - h + 1.0;
        b = h - 1.0;
    }
    (l.max(0.0), t.max(0.0), (r - l).max(1.0), (b - t).max(1.0))
}

/// Render the crop rectangle into `out` (its size is the network input size).
pub fn render_crop(frame: &RgbImage, rect: (f32, f32, f32, f32), out: &mut RgbImage) {
    let (ow, oh) = out.dimensions();
    let to_src = Affine {
        a: rect.2 / ow as f32,
        b: 0.0,
        tx: rect.0,
        c: 0.0,
        d: rect.3 / oh as f32,
        ty: rect.1,
    };
    warp_into(frame, &to_src, out);
}

/// Softmax of logits, in f64 for stability.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = logits.iter().map(|&v| f64::from(v - m).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| (v / sum) as f32).collect()
}

/// One thread's runner of the liveness network.
pub struct Cnn {
    card: ModelCard,
    plan: Plan,
    crop: RgbImage,
    live_class: usize,
    classes: usize,
    scale: f32,
}

impl Cnn {
    pub fn new(card: &ModelCard, plan: &Plan) -> Result<Cnn, VisionError> {
        let spec = card.liveness.as_ref().ok_or_else(|| {
            VisionError::Internal(format!("{} is not a liveness card", card.name))
        })?;
        Ok(Cnn {
            crop: RgbImage::new(card.input.width as u32, card.input.height as u32),
            live_class: spec.live_class,
            classes: spec.classes,
            scale: spec.crop_scale,
            card: card.clone(),
            plan: plan.clone(),
        })
    }

    /// The last crop the network saw (the enlarged face box at the input size).
    pub fn crop(&self) -> &RgbImage {
        &self.crop
    }

    /// The live probability of the face in `bbox`.
    pub fn live_score(&mut self, frame: &RgbImage, bbox: &BBox) -> Result<f32, VisionError> {
        let rect = crop_rect(bbox, frame.width(), frame.height(), self.scale);
        render_crop(frame, rect, &mut self.crop);
        let input = input_tensor(&self.card, self.crop.as_raw())?;
        let err = |e: TractError| VisionError::Inference {
            model: self.card.name.clone(),
            reason: format!("{e:#}"),
        };
        let out = self.plan.run(tvec!(input.into())).map_err(err)?;
        let logits = out
            .first()
            .ok_or_else(|| VisionError::Internal("liveness model gave no output".into()))
            .and_then(|t| f32_values(t).map_err(err))?;
        if logits.len() != self.classes {
            return Err(VisionError::Inference {
                model: self.card.name.clone(),
                reason: format!("{} logits, the card says {}", logits.len(), self.classes),
            });
        }
        Ok(softmax(logits)[self.live_class])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_is_enlarged_and_kept_inside_the_frame() {
        let b = BBox {
            x: 100.0,
            y: 100.0,
            w: 50.0,
            h: 60.0,
        };
        let (l, t, w, h) = crop_rect(&b, 640, 480, 2.7);
        assert!((w - 135.0).abs() < 1e-3 && (h - 162.0).abs() < 1e-3);
        assert!((l + w / 2.0 - 125.0).abs() < 1e-3 && (t + h / 2.0 - 130.0).abs() < 1e-3);
        // Near the corner: shifted, not cut.
        let b = BBox {
            x: 0.0,
            y: 0.0,
            w: 50.0,
            h: 50.0,
        };
        let (l, t, w, h) = crop_rect(&b, 640, 480, 2.7);
        assert_eq!((l, t), (0.0, 0.0));
        assert!((w - 135.0).abs() < 1e-3 && (h - 135.0).abs() < 1e-3);
        // Too big for the frame: the scale is reduced.
        let b = BBox {
            x: 10.0,
            y: 10.0,
            w: 200.0,
            h: 200.0,
        };
        let (_, _, w, h) = crop_rect(&b, 300, 300, 2.7);
        assert!(w <= 299.0 + 1e-3 && h <= 299.0 + 1e-3);
        let p = softmax(&[1.0, 1.0, 1.0]);
        assert!((p[0] - 1.0 / 3.0).abs() < 1e-6);
    }
}
