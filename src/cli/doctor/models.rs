//! The models and recognition checks of `facegate doctor`.

use super::*;

pub(super) fn card_text(card: &ModelCard) -> String {
    let size = std::fs::metadata(card.onnx_path())
        .map(|m| human_bytes(m.len()))
        .unwrap_or_else(|_| "?".into());
    format!("{} ({size})", card.name)
}

pub(super) const REINSTALL_MODELS: &str = "reinstall the facegate package (it puts the models in \
/usr/share/facegate/models), or copy the models/ folder of the release there";

/// The models check; also returns the configured embedder's tag (from its card) for the
/// gallery and Milvus checks, when the card was found.
pub(super) fn check_models(
    config: &Config,
    recorded: Option<&ModelTag>,
) -> (Check, Option<ModelTag>) {
    const NAME: &str = "models";
    let v = &config.vision;
    let Some(dir) = v.models_dir().map(|d| absolute(&d)) else {
        return (
            Check::problem(
                NAME,
                "no models folder found ($FACEGATE_MODELS, ./models, \
                 <binary>/../share/facegate/models and /usr/share/facegate/models hold no \
                 model card)",
                format!("{REINSTALL_MODELS}, or set vision.models_dir"),
            ),
            None,
        );
    };
    if !dir.is_dir() {
        return (
            Check::problem(
                NAME,
                format!(
                    "vision.models_dir = {:?} is not a folder",
                    dir.display().to_string()
                ),
                format!("fix vision.models_dir, or {REINSTALL_MODELS}"),
            ),
            None,
        );
    }
    let detector = model::find_card(&dir, &v.detector, ModelKind::Detector);
    let embedder = match v.embedder_name() {
        Some(name) => model::find_card(&dir, name, ModelKind::Embedder),
        None => model::default_embedder(&dir),
    };
    let (detector, embedder) = match (detector, embedder) {
        (Ok(d), Ok(e)) => (d, e),
        (Err(e), _) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "set vision.detector to one of the detectors available",
                ),
                None,
            );
        }
        (_, Err(e)) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "set vision.embedder to one of the embedders available (or \"auto\")",
                ),
                None,
            );
        }
    };
    let dim = embedder.embedder.as_ref().map_or(0, |e| e.dim);
    let tag = ModelTag::new(&embedder.name, dim);
    for card in [&detector, &embedder] {
        let onnx = card.onnx_path();
        if !onnx.is_file() {
            return (
                Check::problem(
                    NAME,
                    format!(
                        "model file {} is missing (its card {} names it)",
                        onnx.display(),
                        card.path.display()
                    ),
                    REINSTALL_MODELS,
                ),
                Some(tag),
            );
        }
    }
    let start = Instant::now();
    let models = match Models::load(&dir, &detector.name, Some(&embedder.name)) {
        Ok(m) => m,
        Err(e) => {
            return (
                Check::problem(NAME, e.to_string(), REINSTALL_MODELS),
                Some(tag),
            );
        }
    };
    let loaded = start.elapsed();
    let test = match selftest::self_test(&models, v.params()) {
        Ok(t) => t,
        Err(e) => {
            return (
                Check::problem(
                    NAME,
                    format!("the models load but do not work: {e}"),
                    format!(
                        "check the [vision] settings (detect_threshold, min_face_px); if they \
                         are the defaults, {REINSTALL_MODELS}"
                    ),
                ),
                Some(tag),
            );
        }
    };
    let gallery = match recorded {
        Some(r) if *r == tag => ", the same model as the gallery".to_string(),
        Some(r) => format!(
            "; the gallery was made with {} ({}-d): see the gallery line",
            r.name, r.dim
        ),
        None => String::new(),
    };
    (
        Check::ok(
            NAME,
            format!(
                "{} and {} in {}: loaded in {} ms; built-in test picture: {} face, {}-d template \
                 in {} ms{gallery}",
                card_text(&detector),
                card_text(&embedder),
                dir.display(),
                loaded.as_millis(),
                test.faces,
                test.dim,
                test.took.as_millis()
            ),
        ),
        Some(tag),
    )
}

/// The operating point: target FPIR, gallery size, the threshold derived for a door visit.
pub(super) fn check_recognition(config: &Config, templates: Option<usize>) -> Check {
    const NAME: &str = "recognition";
    let Some(dir) = config.vision.models_dir() else {
        return Check::skipped(NAME, "not checked: no models folder (see models)");
    };
    let card = match config.vision.embedder_name() {
        Some(name) => model::find_card(&dir, name, ModelKind::Embedder),
        None => model::default_embedder(&dir),
    };
    let Ok(card) = card else {
        return Check::skipped(NAME, "not checked: the embedder is unknown (see models)");
    };
    let op = match config
        .recognition
        .operating_point(&card, facegate::access::calibration::ProbeKind::Visit)
    {
        Ok(op) => op,
        Err(e) => {
            return Check::problem(
                NAME,
                e.to_string(),
                "set recognition.threshold, or use the default embedder",
            );
        }
    };
    let n = templates.unwrap_or(0);
    let s = op.state_for(n);
    let text = match (s.target_fpir, s.expected_fpir) {
        (Some(target), Some(expected)) => format!(
            "target FPIR {target:e} per visit; gallery of {n} template{}: threshold {:.4}              (expected FPIR {expected:.1e}), margin {:.2}; rises with the gallery (1,000              templates: {:.4})",
            if n == 1 { "" } else { "s" },
            s.threshold,
            s.margin,
            op.state_for(1000).threshold
        ),
        _ => format!(
            "fixed threshold {:.4} (recognition.threshold), margin {:.2}, gallery of {n}              templates: no FPIR is promised",
            s.threshold, s.margin
        ),
    };
    if s.target_fpir.is_none() {
        Check::warning(
            NAME,
            text,
            "remove recognition.threshold and choose recognition.security instead, so the              threshold follows the gallery's size",
        )
    } else {
        Check::ok(NAME, text)
    }
}
