//! The 68-point landmark network (`kind = "landmarks"` card, `models/fr-landmark-68.toml`):
//! the face box (enlarged as the card says), resized to the network's input, grey; the
//! output is 68 x, y pairs in [0, 1] of the crop, in the iBUG 68-point order, mapped back to
//! frame pixels. The head-turn challenge ([`super::challenge`]) reads them.

use image::RgbImage;
use tract_onnx::prelude::*;

use super::cnn::{crop_rect, render_crop};
use crate::vision::VisionError;
use crate::vision::detect::{BBox, Point};
use crate::vision::model::{ModelCard, Plan, f32_values, input_tensor};

/// One thread's runner of the landmark network.
pub struct Landmarker {
    card: ModelCard,
    plan: Plan,
    crop: RgbImage,
    points: usize,
    scale: f32,
}

impl Landmarker {
    pub fn new(card: &ModelCard, plan: &Plan) -> Result<Landmarker, VisionError> {
        let spec = card.landmarks.as_ref().ok_or_else(|| {
            VisionError::Internal(format!("{} is not a landmark card", card.name))
        })?;
        Ok(Landmarker {
            crop: RgbImage::new(card.input.width as u32, card.input.height as u32),
            points: spec.points,
            scale: spec.crop_scale,
            card: card.clone(),
            plan: plan.clone(),
        })
    }

    /// The landmarks of the face in `bbox`, in frame pixels.
    pub fn points(&mut self, frame: &RgbImage, bbox: &BBox) -> Result<Vec<Point>, VisionError> {
        let rect = crop_rect(bbox, frame.width(), frame.height(), self.scale);
        render_crop(frame, rect, &mut self.crop);
        let input = input_tensor(&self.card, self.crop.as_raw())?;
        let err = |e: TractError| VisionError::Inference {
            model: self.card.name.clone(),
            reason: format!("{e:#}"),
        };
        let out = self.plan.run(tvec!(input.into())).map_err(err)?;
        let xy = out
            .first()
            .ok_or_else(|| VisionError::Internal("landmark model gave no output".into()))
            .and_then(|t| f32_values(t).map_err(err))?;
        if xy.len() != 2 * self.points {
            return Err(VisionError::Inference {
                model: self.card.name.clone(),
                reason: format!("{} values, the card says {} points", xy.len(), self.points),
            });
        }
        let (l, t, w, h) = rect;
        Ok(xy
            .chunks_exact(2)
            .map(|p| Point {
                x: l + p[0] * w,
                y: t + p[1] * h,
            })
            .collect())
    }
}
