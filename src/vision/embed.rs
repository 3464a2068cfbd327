//! Face embeddings: an aligned 112×112 crop through the embedder network, L2-normalised.

use image::RgbImage;
use serde::Serialize;
use tract_onnx::prelude::*;

use super::VisionError;
use super::model::{ModelCard, Plan, f32_values, input_tensor};

/// An L2-normalised face embedding. Cosine similarity of two embeddings is their dot product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Embedding(pub Vec<f32>);

impl Embedding {
    /// Normalise a raw vector; `None` if it is zero or not finite.
    pub fn normalised(mut v: Vec<f32>) -> Option<Embedding> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !(norm.is_finite() && norm > 1e-12) {
            return None;
        }
        v.iter_mut().for_each(|x| *x /= norm);
        Some(Embedding(v))
    }

    /// Cosine similarity in `[-1, 1]`.
    pub fn cosine(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }

    pub fn dim(&self) -> usize {
        self.0.len()
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }
}

/// The embedder network (MobileFaceNet or another described by its card).
pub struct Embedder {
    card: ModelCard,
    state: TypedSimpleState,
    dim: usize,
    mirror: RgbImage,
}

impl Embedder {
    pub fn new(card: &ModelCard, plan: &Plan) -> Result<Self, VisionError> {
        let spec = card
            .embedder
            .as_ref()
            .ok_or_else(|| VisionError::ModelCard {
                path: card.path.clone(),
                reason: "not an embedder card".into(),
            })?;
        if spec.alignment != "arcface-112" || card.input.width != 112 || card.input.height != 112 {
            return Err(VisionError::ModelCard {
                path: card.path.clone(),
                reason: format!(
                    "alignment {:?} at {}x{} is not supported (known: arcface-112 at 112x112)",
                    spec.alignment, card.input.width, card.input.height
                ),
            });
        }
        let state = TypedSimpleState::new(plan).map_err(|e| VisionError::ModelLoad {
            path: card.onnx_path(),
            reason: format!("{e:#}"),
        })?;
        Ok(Embedder {
            card: card.clone(),
            state,
            dim: spec.dim,
            mirror: RgbImage::new(112, 112),
        })
    }

    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The raw (not normalised) network output for one crop.
    pub fn raw(&mut self, crop: &RgbImage) -> Result<Vec<f32>, VisionError> {
        let input = input_tensor(&self.card, crop.as_raw())?;
        let outputs = self
            .state
            .run(tvec!(input.into()))
            .map_err(|e| self.inference_error(e))?;
        let first = outputs
            .first()
            .ok_or_else(|| self.inference_error("the model produced no output"))?;
        let out = f32_values(first).map_err(|e| self.inference_error(e))?;
        if out.len() != self.dim {
            return Err(VisionError::Inference {
                model: self.card.name.clone(),
                reason: format!(
                    "output has {} values, the card says {}",
                    out.len(),
                    self.dim
                ),
            });
        }
        Ok(out.to_vec())
    }

    /// Embed one aligned crop. With `flip`, the crop and its mirror image are embedded and
    /// their raw outputs summed before normalising (a standard test-time augmentation that
    /// costs a second inference).
    pub fn embed(&mut self, crop: &RgbImage, flip: bool) -> Result<Embedding, VisionError> {
        let mut v = self.raw(crop)?;
        if flip {
            mirror_into(crop, &mut self.mirror);
            let mirror = std::mem::take(&mut self.mirror);
            let m = self.raw(&mirror);
            self.mirror = mirror;
            for (a, b) in v.iter_mut().zip(m?) {
                *a += b;
            }
        }
        Embedding::normalised(v).ok_or_else(|| VisionError::Inference {
            model: self.card.name.clone(),
            reason: "embedding is zero or not finite".into(),
        })
    }

    /// Both embeddings of one crop for the price of two inferences: without the mirror image
    /// and with it (what [`Embedder::embed`] gives with `flip` off and on). For measuring what
    /// the mirror is worth (`facegate eval --by-face-size`).
    pub fn embed_plain_and_mirrored(
        &mut self,
        crop: &RgbImage,
    ) -> Result<(Embedding, Embedding), VisionError> {
        let plain = self.raw(crop)?;
        mirror_into(crop, &mut self.mirror);
        let mirror = std::mem::take(&mut self.mirror);
        let m = self.raw(&mirror);
        self.mirror = mirror;
        let both: Vec<f32> = plain.iter().zip(m?).map(|(a, b)| a + b).collect();
        let zero = || VisionError::Inference {
            model: self.card.name.clone(),
            reason: "embedding is zero or not finite".into(),
        };
        Ok((
            Embedding::normalised(plain).ok_or_else(zero)?,
            Embedding::normalised(both).ok_or_else(zero)?,
        ))
    }

    fn inference_error(&self, e: impl std::fmt::Display) -> VisionError {
        VisionError::Inference {
            model: self.card.name.clone(),
            reason: e.to_string(),
        }
    }
}

fn mirror_into(src: &RgbImage, dst: &mut RgbImage) {
    if dst.dimensions() != src.dimensions() {
        *dst = RgbImage::new(src.width(), src.height());
    }
    let w = src.width() as usize * 3;
    for (s, d) in src.as_raw().chunks_exact(w).zip(dst.chunks_exact_mut(w)) {
        for (sp, dp) in s.chunks_exact(3).zip(d.chunks_exact_mut(3).rev()) {
            dp.copy_from_slice(sp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_gives_unit_length_and_refuses_zero() {
        let e = Embedding::normalised(vec![3.0, 4.0]).unwrap();
        assert!((e.0[0] - 0.6).abs() < 1e-6 && (e.0[1] - 0.8).abs() < 1e-6);
        assert!((e.cosine(&e) - 1.0).abs() < 1e-6);
        assert!(Embedding::normalised(vec![0.0, 0.0]).is_none());
        assert!(Embedding::normalised(vec![f32::NAN, 1.0]).is_none());
    }

    #[test]
    fn mirror_reverses_columns() {
        let src = RgbImage::from_fn(3, 1, |x, _| image::Rgb([x as u8, 0, 0]));
        let mut dst = RgbImage::new(3, 1);
        mirror_into(&src, &mut dst);
        assert_eq!(dst.get_pixel(0, 0).0[0], 2);
        assert_eq!(dst.get_pixel(2, 0).0[0], 0);
    }
}
