//! Vision benchmarks, single-threaded: detect, align, embed (f32 and int8), liveness (the
//! network, the model-free cues, both) and the whole pipeline on a 640×480 frame with one
//! face. `cargo bench --bench vision`.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use facegate::vision::{
    Models, Pipeline, VisionParams, align, frame, resample::Affine, resample::warp,
};
use image::RgbImage;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A 640×480 camera-like frame with one face: the fixture photo scaled into it.
fn frame_640x480() -> RgbImage {
    let photo = frame::read_image(
        &root().join("tests/fixtures/faces/obama_1.jpg"),
        frame::DEFAULT_MAX_PIXELS,
    )
    .expect("fixture");
    let s = (640.0 / photo.width() as f32).min(480.0 / photo.height() as f32);
    let to_src = Affine::scale_translate(1.0 / s, 0.0, 0.0);
    warp(&photo, &to_src, 640, 480)
}

fn bench(c: &mut Criterion) {
    let dir = root().join("models");
    let f32_models =
        Models::load(&dir, "blazeface-front-128", Some("mobilefacenet")).expect("models");
    let int8_models =
        Models::load(&dir, "blazeface-front-128", Some("mobilefacenet-int8")).expect("models");
    let frame = frame_640x480();
    let fast = VisionParams {
        flip: false,
        detect: facegate::vision::DetectParams {
            refine: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut p = Pipeline::new(&f32_models, fast.clone()).expect("pipeline");
    let det = p
        .detect(&frame)
        .expect("detect")
        .into_iter()
        .next()
        .expect("one face");
    let mut crop = RgbImage::new(112, 112);
    align::align_into(&frame, &det, &mut crop).expect("align");

    let mut g = c.benchmark_group("vision");
    g.sample_size(30);
    g.bench_function("detect 640x480 (blazeface-128, one pass)", |b| {
        b.iter(|| p.detect(&frame).expect("detect"))
    });
    let mut refined = Pipeline::new(
        &f32_models,
        VisionParams {
            flip: false,
            ..Default::default()
        },
    )
    .expect("pipeline");
    g.bench_function("detect 640x480 (+ closer look)", |b| {
        b.iter(|| refined.detect(&frame).expect("detect"))
    });
    g.bench_function("align 112x112", |b| {
        b.iter(|| align::align_into(&frame, &det, &mut crop).expect("align"))
    });
    g.bench_function("embed f32", |b| {
        b.iter(|| p.embed_crop(&crop).expect("embed"))
    });
    let mut p8 = Pipeline::new(&int8_models, fast.clone()).expect("pipeline");
    g.bench_function("embed int8", |b| {
        b.iter(|| p8.embed_crop(&crop).expect("embed"))
    });
    g.bench_function("pipeline 640x480 fast (one pass, no mirror)", |b| {
        b.iter(|| p.analyse(&frame).expect("analyse"))
    });
    let mut full = Pipeline::new(&f32_models, VisionParams::default()).expect("pipeline");
    g.bench_function("pipeline 640x480 default (closer look + mirror)", |b| {
        b.iter(|| full.analyse(&frame).expect("analyse"))
    });
    let live_models = facegate::vision::liveness::LivenessModels::load(
        &dir,
        &facegate::vision::liveness::LivenessConfig::default(),
    )
    .expect("liveness model");
    let mut checker = facegate::vision::liveness::Checker::new(&live_models).expect("checker");
    g.bench_function("liveness per frame (network + cues)", |b| {
        b.iter(|| checker.frame(&frame, &det).expect("liveness"))
    });
    let mut cnn = facegate::vision::liveness::cnn::Cnn::new(&live_models.card, &{
        live_models.card.load_plan().expect("plan")
    })
    .expect("cnn");
    g.bench_function("liveness network alone (crop x2.7 + 128x128)", |b| {
        b.iter(|| cnn.live_score(&frame, &det.bbox).expect("cnn"))
    });
    let live_crop = cnn.crop().clone();
    let mut meter = facegate::vision::liveness::cues::CueMeter::new();
    g.bench_function("liveness cues alone (FFT, bezel, colour)", |b| {
        b.iter(|| meter.measure(&frame, &det.bbox, &live_crop, 2.7))
    });
    // The head-turn challenge's landmark network (loaded with `challenge = "turn"`).
    let turn_models = facegate::vision::liveness::LivenessModels::load(
        &dir,
        &facegate::vision::liveness::LivenessConfig {
            challenge: facegate::vision::liveness::ChallengeKind::Turn,
            ..facegate::vision::liveness::LivenessConfig::default()
        },
    )
    .expect("landmark model");
    let mut turn = facegate::vision::liveness::Checker::new(&turn_models).expect("checker");
    g.bench_function("liveness landmarks 68 (crop + 64x64 grey)", |b| {
        b.iter(|| {
            turn.landmarks(&frame, &det)
                .expect("loaded")
                .expect("landmarks")
        })
    });
    g.bench_function("decode JPEG 640x480", |b| {
        let mut jpeg = Vec::new();
        frame
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .expect("encode");
        b.iter(|| frame::decode_image(&jpeg, frame::DEFAULT_MAX_PIXELS).expect("decode"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
