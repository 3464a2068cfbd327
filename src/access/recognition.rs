//! The `[recognition]` configuration section: how sure facegate must be before it says a face
//! is an enrolled person. The installer chooses a false-positive identification rate (a
//! security level or `target_fpir`); the threshold is derived from the embedder's calibration
//! and the gallery's size (see [`super::calibration`]).

use serde::{Deserialize, Serialize};

use super::calibration::ProbeKind;
use super::decision::{OperatingPoint, ThresholdSource};
use crate::vision::model::ModelCard;

pub const DEFAULT_TOML: &str = r#"
[recognition]
# How often a stranger may be taken for an enrolled person (the false-positive identification
# rate, FPIR, per photo at the API and per visit at the door):
#   "convenience" = 1e-2, "standard" = 1e-3, "high" = 1e-4.
# The cosine threshold is derived from it, the embedder's measured impostor scores (its model
# card's [calibration]) and the number of templates in the gallery, and rises as the gallery
# grows. `facegate doctor` and GET /readyz show the threshold in force.
security = "standard"
# A target FPIR instead of a named level (1e-6..0.1). Unset: from `security`.
# target_fpir = 1e-3
# The best person must beat the second-best other person by this much (cosine); otherwise the
# face is refused as ambiguous. Chosen on the calibration part of the open-set protocol (README).
margin = 0.0
# A fixed cosine threshold (-1..1) instead of one derived from the FPIR: the same whatever the
# gallery size. Not recommended: at 0.41 (the 1:1 LFW threshold) a stranger matched someone in
# a 1,000-person gallery 83% of the time.
# threshold = 0.65
"#;

/// Named security levels and their FPIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    Convenience,
    Standard,
    High,
}

impl Security {
    pub fn fpir(self) -> f64 {
        match self {
            Security::Convenience => 1e-2,
            Security::Standard => 1e-3,
            Security::High => 1e-4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecognitionConfig {
    pub security: Security,
    pub target_fpir: Option<f64>,
    pub margin: f32,
    pub threshold: Option<f32>,
}

/// The default margin (see the documented default).
pub const DEFAULT_MARGIN: f32 = 0.0;

impl Default for RecognitionConfig {
    fn default() -> Self {
        RecognitionConfig {
            security: Security::Standard,
            target_fpir: None,
            margin: DEFAULT_MARGIN,
            threshold: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecognitionError {
    #[error(
        "the embedder's model card {card} has no [calibration], so no threshold can be derived \
         from recognition.security / target_fpir: use an embedder with one (mobilefacenet, \
         mobilefacenet-int8), or measure it (facegate eval --open-set DIR --calibration-out \
         FILE) and add it to the card, or set recognition.threshold"
    )]
    NoCalibration { card: String },
    #[error("the embedder's model card {card} has no threshold; set recognition.threshold")]
    NoThreshold { card: String },
}

impl RecognitionConfig {
    pub fn check(&self) -> Result<(), String> {
        if let Some(f) = self.target_fpir
            && !(1e-6..=0.1).contains(&f)
        {
            return Err(format!(
                "recognition.target_fpir = {f} is outside 1e-6..0.1 (a rate: 1e-3 is one \
                 stranger in a thousand taken for someone enrolled)"
            ));
        }
        if !(0.0..=0.5).contains(&self.margin) {
            return Err(format!(
                "recognition.margin = {} is outside 0..0.5 (a cosine difference)",
                self.margin
            ));
        }
        if let Some(t) = self.threshold
            && !(-1.0..=1.0).contains(&t)
        {
            return Err(format!(
                "recognition.threshold = {t} is outside -1..1 (it is a cosine similarity)"
            ));
        }
        Ok(())
    }

    /// The FPIR aimed at.
    pub fn fpir(&self) -> f64 {
        self.target_fpir.unwrap_or(self.security.fpir())
    }

    /// The operating point for `probe` (photos at the API, visits at the door) with this
    /// embedder (its model card). Its threshold is for one template until the caller tells it
    /// the gallery's size.
    pub fn operating_point(
        &self,
        embedder: &ModelCard,
        probe: ProbeKind,
    ) -> Result<OperatingPoint, RecognitionError> {
        let card = embedder.path.display().to_string();
        if let Some(t) = self.threshold {
            return Ok(OperatingPoint::new(
                ThresholdSource::Fixed(t),
                self.margin,
                probe,
                t,
            ));
        }
        let floor = embedder
            .embedder
            .as_ref()
            .and_then(|e| e.threshold)
            .ok_or_else(|| RecognitionError::NoThreshold { card: card.clone() })?;
        let calibration = embedder
            .calibration
            .clone()
            .ok_or(RecognitionError::NoCalibration { card })?;
        Ok(OperatingPoint::new(
            ThresholdSource::Calibrated {
                target_fpir: self.fpir(),
                calibration: Box::new(calibration),
            },
            self.margin,
            probe,
            floor,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_rates_and_ranges_are_checked() {
        let d = RecognitionConfig::default();
        assert_eq!(d.fpir(), 1e-3);
        assert!(d.check().is_ok());
        let c = RecognitionConfig {
            target_fpir: Some(0.5),
            ..RecognitionConfig::default()
        };
        assert!(c.check().unwrap_err().contains("target_fpir"));
        let c = RecognitionConfig {
            security: Security::High,
            ..RecognitionConfig::default()
        };
        assert_eq!(c.fpir(), 1e-4);
        let c = RecognitionConfig {
            margin: -0.1,
            ..RecognitionConfig::default()
        };
        assert!(c.check().unwrap_err().contains("margin"));
    }

    #[test]
    fn every_shipped_embedder_derives_its_threshold_from_its_calibration() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let cards = crate::vision::model::list_cards(&dir).unwrap();
        let embedders: Vec<&ModelCard> = cards.iter().filter(|c| c.embedder.is_some()).collect();
        let names: Vec<&str> = embedders.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&"mobilefacenet-int8"), "{names:?}");
        assert!(names.contains(&"mobilefacenet"), "{names:?}");
        for card in embedders {
            let floor = card.embedder.as_ref().and_then(|e| e.threshold).unwrap();
            for probe in [ProbeKind::Image, ProbeKind::Visit] {
                let op = RecognitionConfig::default()
                    .operating_point(card, probe)
                    .unwrap_or_else(|e| panic!("{}: {e}", card.name));
                op.set_templates(1000);
                let s = op.state();
                // Derived for the target, not the fixed 1:1 threshold.
                assert_eq!(s.target_fpir, Some(1e-3), "{}", card.name);
                assert!(
                    s.threshold > floor + 0.1 && s.threshold < 0.9,
                    "{} {probe:?}: {} (floor {floor})",
                    card.name,
                    s.threshold
                );
                let e = s.expected_fpir.unwrap();
                assert!((e - 1e-3).abs() < 1e-4, "{} {probe:?}: {e}", card.name);
            }
        }
    }
}
