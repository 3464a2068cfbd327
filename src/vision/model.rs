//! Model cards and model loading.
//!
//! Every ONNX file in `models/` has a small TOML card beside it (same stem) that says what the
//! network expects: input name, size, layout and normalisation, and what it produces. The code
//! reads the card at load time, so another detector or embedder plugs in without code changes
//! as long as it belongs to a family the decoder knows (see `models/README.md`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use super::VisionError;

/// A runnable, optimised tract plan. Cheap to clone (shared); each user makes its own
/// [`TypedSimpleState`] to run it.
pub type Plan = Arc<TypedRunnableModel>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Detector,
    Embedder,
    /// Presentation-attack detection: live score of a face crop.
    Liveness,
    /// Facial landmarks (68 points) of a face crop.
    Landmarks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Precision {
    #[serde(rename = "f32")]
    F32,
    #[serde(rename = "int8-qdq")]
    Int8Qdq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nhwc,
    Nchw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Rgb,
    Bgr,
    /// One channel: BT.601 luma of the RGB pixel (`mean[0]`, `std[0]` apply).
    Grey,
}

impl Colour {
    /// Channels of the model input.
    pub fn channels(self) -> usize {
        match self {
            Colour::Grey => 1,
            Colour::Rgb | Colour::Bgr => 3,
        }
    }
}

/// The `[input]` table of a card: how to turn an RGB crop into the model's input tensor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub width: usize,
    pub height: usize,
    pub layout: Layout,
    pub colour: Colour,
    /// Model input = (pixel - mean) / std, per channel in RGB order.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    /// Decoder family; only `blazeface` is known.
    pub family: String,
    /// Score logit outputs, concatenated in anchor order.
    pub scores: Vec<String>,
    /// Box and keypoint regressor outputs, same order as `scores`.
    pub regressors: Vec<String>,
    /// `[grid side, anchors per cell]` per output layer.
    pub anchor_layers: Vec<[usize; 2]>,
    pub keypoints: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderSpec {
    pub output: String,
    pub dim: usize,
    /// Alignment template the network was trained with; only `arcface-112` is known.
    pub alignment: String,
    /// Whether the output is already L2-normalised (it is normalised again either way).
    pub normalised: bool,
    /// Cosine similarity at or above which two faces are the same person, chosen on LFW
    /// DevTrain (see the README). The configuration may override it.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// CPU architectures (`std::env::consts::ARCH`) where this file is the default embedder,
    /// chosen by measurement (see `models/README.md`).
    #[serde(default)]
    pub preferred_on: Vec<String>,
}

/// The `[liveness]` table of a liveness card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivenessSpec {
    /// Graph output name, shape `[1, classes]` (logits).
    pub output: String,
    pub classes: usize,
    /// Index of the live class: live score = softmax(output)[live_class].
    pub live_class: usize,
    /// The detector's face box is enlarged this much around its centre for the crop.
    pub crop_scale: f32,
    /// Per-frame live score under which a frame counts as an attack (the configuration may
    /// override it).
    pub threshold: f32,
}

/// The `[landmarks]` table of a landmark card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandmarkSpec {
    /// Graph output name, shape `[1, 2 * points]`: x, y in [0, 1] of the crop.
    pub output: String,
    pub points: usize,
    /// The detector's face box is enlarged this much around its centre for the crop.
    pub crop_scale: f32,
}

/// A model card: the TOML file next to each ONNX file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub kind: ModelKind,
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub precision: Precision,
    pub licence: String,
    pub source: String,
    pub input: InputSpec,
    #[serde(default)]
    pub detector: Option<DetectorSpec>,
    #[serde(default)]
    pub embedder: Option<EmbedderSpec>,
    /// An embedder's measured impostor score tail, from which thresholds for a target FPIR
    /// are derived (`facegate eval --open-set ... --calibration-out`).
    #[serde(default)]
    pub calibration: Option<crate::access::calibration::Calibration>,
    #[serde(default)]
    pub liveness: Option<LivenessSpec>,
    #[serde(default)]
    pub landmarks: Option<LandmarkSpec>,
    /// Where the card was read from (set at load time).
    #[serde(skip)]
    pub path: PathBuf,
}

impl ModelCard {
    /// Read and check a card. `path` is the `.toml` file.
    pub fn read(path: &Path) -> Result<Self, VisionError> {
        let text = std::fs::read_to_string(path).map_err(|source| VisionError::ModelFile {
            path: path.to_owned(),
            source,
        })?;
        let mut card: ModelCard = toml::from_str(&text).map_err(|e| VisionError::ModelCard {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        card.path = path.to_owned();
        let bad = |reason: String| VisionError::ModelCard {
            path: path.to_owned(),
            reason,
        };
        match card.kind {
            ModelKind::Detector if card.detector.is_none() => {
                return Err(bad(
                    "kind is \"detector\" but the [detector] table is missing".into(),
                ));
            }
            ModelKind::Embedder if card.embedder.is_none() => {
                return Err(bad(
                    "kind is \"embedder\" but the [embedder] table is missing".into(),
                ));
            }
            ModelKind::Liveness => match &card.liveness {
                None => {
                    return Err(bad(
                        "kind is \"liveness\" but the [liveness] table is missing".into(),
                    ));
                }
                Some(l) if l.live_class >= l.classes => {
                    return Err(bad(format!(
                        "liveness.live_class = {} but there are {} classes",
                        l.live_class, l.classes
                    )));
                }
                Some(l) if !(l.crop_scale >= 1.0 && l.crop_scale <= 8.0) => {
                    return Err(bad(format!(
                        "liveness.crop_scale = {} is outside 1..8",
                        l.crop_scale
                    )));
                }
                Some(_) => {}
            },
            ModelKind::Landmarks if card.landmarks.is_none() => {
                return Err(bad(
                    "kind is \"landmarks\" but the [landmarks] table is missing".into(),
                ));
            }
            _ => {}
        }
        if card.input.width == 0 || card.input.height == 0 {
            return Err(bad("input width and height must be positive".into()));
        }
        if card.input.std.contains(&0.0) {
            return Err(bad("input std must not be zero".into()));
        }
        if let Some(c) = &card.calibration {
            c.check().map_err(|e| bad(e.to_string()))?;
        }
        Ok(card)
    }

    /// The ONNX file this card describes.
    pub fn onnx_path(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.file)
    }

    /// Input tensor shape `[1, …]` in the card's layout.
    pub fn input_shape(&self) -> [usize; 4] {
        let i = &self.input;
        let c = i.colour.channels();
        match i.layout {
            Layout::Nhwc => [1, i.height, i.width, c],
            Layout::Nchw => [1, c, i.height, i.width],
        }
    }

    /// Names of the outputs the code reads, in the order it reads them.
    pub fn output_names(&self) -> Vec<String> {
        match self.kind {
            ModelKind::Detector => self.detector.as_ref().map_or(Vec::new(), |d| {
                d.scores
                    .iter()
                    .chain(d.regressors.iter())
                    .cloned()
                    .collect()
            }),
            ModelKind::Embedder => self
                .embedder
                .as_ref()
                .map_or(Vec::new(), |e| vec![e.output.clone()]),
            ModelKind::Liveness => self
                .liveness
                .as_ref()
                .map_or(Vec::new(), |l| vec![l.output.clone()]),
            ModelKind::Landmarks => self
                .landmarks
                .as_ref()
                .map_or(Vec::new(), |l| vec![l.output.clone()]),
        }
    }

    /// Load the ONNX file, check its sha256 against the card, fix the input shape and
    /// optimise it for tract. Done once per process; the plan is shared.
    pub fn load_plan(&self) -> Result<Plan, VisionError> {
        let onnx = self.onnx_path();
        let bytes = std::fs::read(&onnx).map_err(|source| VisionError::ModelFile {
            path: onnx.clone(),
            source,
        })?;
        let digest = hex(&Sha256::digest(&bytes));
        if !digest.eq_ignore_ascii_case(self.sha256.trim()) {
            return Err(VisionError::ModelChecksum {
                path: onnx,
                expected: self.sha256.clone(),
                actual: digest,
            });
        }
        let tract_err = |e: TractError| VisionError::ModelLoad {
            path: onnx.clone(),
            reason: format!("{e:#}"),
        };
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(tract_err)?;
        model
            .set_input_names([self.input.name.as_str()])
            .map_err(tract_err)?;
        model
            .set_input_fact(0, f32::fact(self.input_shape()).into())
            .map_err(tract_err)?;
        model
            .select_outputs_by_name(self.output_names())
            .map_err(tract_err)?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(tract_err)?;
        Ok(plan)
    }
}

/// Lower-case hex of a byte slice.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Every card in a models directory.
pub fn list_cards(dir: &Path) -> Result<Vec<ModelCard>, VisionError> {
    let entries = std::fs::read_dir(dir).map_err(|source| VisionError::ModelFile {
        path: dir.to_owned(),
        source,
    })?;
    let mut cards = Vec::new();
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    for p in paths {
        cards.push(ModelCard::read(&p)?);
    }
    Ok(cards)
}

/// Find a card by model name (`name` in the card) or by file stem.
pub fn find_card(dir: &Path, name: &str, kind: ModelKind) -> Result<ModelCard, VisionError> {
    let cards = list_cards(dir)?;
    let known: Vec<String> = cards
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.name.clone())
        .collect();
    cards
        .into_iter()
        .find(|c| {
            c.kind == kind && (c.name == name || c.path.file_stem().is_some_and(|s| s == name))
        })
        .ok_or_else(|| VisionError::ModelNotFound {
            dir: dir.to_owned(),
            name: name.to_owned(),
            known,
        })
}

/// The embedder card preferred on this CPU architecture: the first card whose `preferred_on`
/// names `std::env::consts::ARCH`, else the first f32 embedder.
pub fn default_embedder(dir: &Path) -> Result<ModelCard, VisionError> {
    let arch = std::env::consts::ARCH;
    let cards: Vec<ModelCard> = list_cards(dir)?
        .into_iter()
        .filter(|c| c.kind == ModelKind::Embedder)
        .collect();
    let preferred = cards.iter().position(|c| {
        c.embedder
            .as_ref()
            .is_some_and(|e| e.preferred_on.iter().any(|a| a == arch))
    });
    let f32_first = cards.iter().position(|c| c.precision == Precision::F32);
    match preferred
        .or(f32_first)
        .or(if cards.is_empty() { None } else { Some(0) })
    {
        Some(i) => Ok(cards[i].clone()),
        None => Err(VisionError::ModelNotFound {
            dir: dir.to_owned(),
            name: "any embedder".into(),
            known: Vec::new(),
        }),
    }
}

/// Where the bundled models are looked for when the configuration names no directory:
/// `$FACEGATE_MODELS`, `./models`, `<exe>/../share/facegate/models`,
/// `/usr/share/facegate/models`, and the source tree this binary was built from.
pub fn default_models_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("FACEGATE_MODELS") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(PathBuf::from("models"));
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        candidates.push(bin.join("../share/facegate/models"));
    }
    candidates.push(PathBuf::from("/usr/share/facegate/models"));
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models"
    )));
    candidates.into_iter().find(|p| has_cards(p))
}

fn has_cards(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut it| {
        it.any(|e| {
            e.ok()
                .is_some_and(|e| e.path().extension().is_some_and(|x| x == "toml"))
        })
    })
}

/// Build the model input tensor from an RGB image of exactly the card's size.
/// `pixels` is row-major RGB, `width * height * 3` bytes.
pub fn input_tensor(card: &ModelCard, pixels: &[u8]) -> Result<Tensor, VisionError> {
    let input = &card.input;
    let (w, h) = (input.width, input.height);
    if pixels.len() != w * h * 3 {
        return Err(VisionError::Internal(format!(
            "input crop has {} bytes, the model wants {w}x{h}x3",
            pixels.len()
        )));
    }
    let order: [usize; 3] = match input.colour {
        Colour::Rgb => [0, 1, 2],
        Colour::Bgr => [2, 1, 0],
        Colour::Grey => {
            let (mean, scale) = (input.mean[0], 1.0 / input.std[0]);
            let data: Vec<f32> = pixels
                .chunks_exact(3)
                .map(|p| {
                    let y = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
                    (y.round() - mean) * scale
                })
                .collect();
            return tract_ndarray::ArrayD::from_shape_vec(card.input_shape().to_vec(), data)
                .map(Tensor::from)
                .map_err(|e| VisionError::Internal(e.to_string()));
        }
    };
    let mean = order.map(|s| input.mean[s]);
    let scale = order.map(|s| 1.0 / input.std[s]);
    let mut data = vec![0f32; w * h * 3];
    match input.layout {
        Layout::Nhwc => {
            for (dst, src) in data.chunks_exact_mut(3).zip(pixels.chunks_exact(3)) {
                for c in 0..3 {
                    dst[c] = (src[order[c]] as f32 - mean[c]) * scale[c];
                }
            }
        }
        Layout::Nchw => {
            let plane = w * h;
            for (i, src) in pixels.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    data[c * plane + i] = (src[order[c]] as f32 - mean[c]) * scale[c];
                }
            }
        }
    }
    tract_ndarray::ArrayD::from_shape_vec(card.input_shape().to_vec(), data)
        .map(Tensor::from)
        .map_err(|e| VisionError::Internal(e.to_string()))
}

/// The f32 values of an output tensor.
pub fn f32_values(t: &Tensor) -> TractResult<&[f32]> {
    t.try_as_plain_ram()?.as_slice::<f32>()
}
