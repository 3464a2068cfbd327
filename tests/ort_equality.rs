//! tract's output equals onnxruntime's on the same input tensor, for every shipped model.
//! The reference inputs and outputs were written by `models/convert/reference.py`
//! (onnxruntime, one thread) into `tests/fixtures/ort/`.

mod common;

use common::repo;
use facegate::vision::model::{ModelCard, f32_values};
use tract_onnx::prelude::*;

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Run one model on its reference input; return (max abs diff, max |reference|, cosine) per output.
fn compare(stem: &str) -> Vec<(String, f32, f32, f32)> {
    let fixtures = repo().join("tests/fixtures/ort");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join(format!("{stem}.json"))).unwrap(),
    )
    .unwrap();
    let card = ModelCard::read(&repo().join("models").join(format!("{stem}.toml"))).unwrap();
    let plan = card.load_plan().unwrap();
    let input = read_f32(&fixtures.join(meta["input"]["file"].as_str().unwrap()));
    let tensor: Tensor = tract_ndarray::ArrayD::from_shape_vec(card.input_shape().to_vec(), input)
        .unwrap()
        .into();
    let outputs = plan.run(tvec!(tensor.into())).unwrap();
    let names: Vec<String> = card.output_names();
    let mut out = Vec::new();
    for (name, got) in names.iter().zip(outputs.iter()) {
        let entry = meta["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name.as_str())
            .unwrap();
        let want = read_f32(&fixtures.join(entry["file"].as_str().unwrap()));
        let got = f32_values(got).unwrap();
        assert_eq!(got.len(), want.len(), "{stem} {name}: length");
        let max_diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let max_ref = want.iter().map(|v| v.abs()).fold(0.0, f32::max);
        let dot: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos = dot / (n(got) * n(&want));
        println!(
            "{stem} {name}: max abs diff {max_diff:.3e} (max |ort| {max_ref:.3e}), cosine {cos:.7}"
        );
        out.push((name.clone(), max_diff, max_ref, cos));
    }
    out
}

#[test]
fn float_models_match_onnxruntime_to_float_rounding() {
    for stem in [
        "blazeface-front-128",
        "blazeface-back-256",
        "mobilefacenet",
        "fr-liveness-128",
        "fr-landmark-68",
    ] {
        for (name, diff, max_ref, _) in compare(stem) {
            // Relative to the output's own scale (detector logits reach ~3e4 on padding).
            assert!(
                diff <= 1e-4 * max_ref.max(1.0),
                "{stem} {name}: max abs diff {diff} (scale {max_ref})"
            );
        }
    }
}

#[test]
fn int8_embedder_matches_onnxruntime_by_cosine() {
    // onnxruntime fuses QDQ into integer kernels and tract computes it in float, so the two
    // round differently; the embedding's direction is what recognition uses.
    for (name, diff, _, cos) in compare("mobilefacenet-int8") {
        assert!(
            cos >= 0.998,
            "mobilefacenet-int8 {name}: cosine {cos}, max abs diff {diff}"
        );
    }
}

#[test]
fn liveness_model_live_score_matches_onnxruntime() {
    // The live probability (softmax of the logits) is what the code uses: compare that too.
    let fixtures = repo().join("tests/fixtures/ort");
    let card = ModelCard::read(&repo().join("models/fr-liveness-128.toml")).unwrap();
    let spec = card.liveness.clone().expect("a liveness card");
    let plan = card.load_plan().unwrap();
    let input = read_f32(&fixtures.join("fr-liveness-128.input.f32"));
    let want = read_f32(&fixtures.join("fr-liveness-128.output.f32"));
    let tensor: Tensor = tract_ndarray::ArrayD::from_shape_vec(card.input_shape().to_vec(), input)
        .unwrap()
        .into();
    let out = plan.run(tvec!(tensor.into())).unwrap();
    let got = f32_values(&out[0]).unwrap().to_vec();
    let p_got = facegate::vision::liveness::cnn::softmax(&got)[spec.live_class];
    let p_want = facegate::vision::liveness::cnn::softmax(&want)[spec.live_class];
    println!("fr-liveness-128 live score: tract {p_got:.7}, onnxruntime {p_want:.7}");
    assert!((p_got - p_want).abs() < 1e-5, "{p_got} vs {p_want}");
}
