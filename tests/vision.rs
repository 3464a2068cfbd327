//! The vision pipeline on the fixture photos in `tests/fixtures/faces` (run on any clone).

mod common;

use common::*;
use facegate::vision::model::{ModelCard, find_card};
use facegate::vision::{ModelKind, Models, VisionError, frame, resample::Affine};

#[test]
fn same_person_scores_higher_than_different_people() {
    let mut p = pipeline();
    let o1 = embed_largest(&mut p, &fixture("obama_1.jpg"));
    let o2 = embed_largest(&mut p, &fixture("obama_2.jpg"));
    let b1 = embed_largest(&mut p, &fixture("biden_1.jpg"));
    let b2 = embed_largest(&mut p, &fixture("biden_2.jpg"));
    let same = [o1.cosine(&o2), b1.cosine(&b2)];
    let different = [
        o1.cosine(&b1),
        o1.cosine(&b2),
        o2.cosine(&b1),
        o2.cosine(&b2),
    ];
    eprintln!("same {same:?} different {different:?}");
    let threshold = models()
        .recommended_threshold()
        .expect("card has a threshold");
    for s in same {
        assert!(
            s >= threshold,
            "same person {s} under threshold {threshold}"
        );
    }
    for d in different {
        assert!(
            d < threshold,
            "different people {d} over threshold {threshold}"
        );
    }
    assert_eq!(o1.dim(), 192);
    let norm: f32 = o1.as_slice().iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-4, "embedding is L2-normalised");
}

#[test]
fn no_face_image_gives_no_face_and_two_people_give_two() {
    let mut p = pipeline();
    let coffee =
        frame::read_image(&fixture("no_face_coffee.jpg"), frame::DEFAULT_MAX_PIXELS).unwrap();
    assert!(p.analyse(&coffee).unwrap().is_empty());
    let two = frame::read_image(&fixture("two_people.jpg"), frame::DEFAULT_MAX_PIXELS).unwrap();
    let faces = p.analyse(&two).unwrap();
    assert_eq!(
        faces.len(),
        2,
        "{:?}",
        faces.iter().map(|f| f.detection.bbox).collect::<Vec<_>>()
    );
    assert!(
        faces[0].detection.bbox.area() >= faces[1].detection.bbox.area(),
        "largest first"
    );
    // The two faces are the two people of the fixtures: each matches one of them.
    let o = embed_largest(&mut p, &fixture("obama_1.jpg"));
    let b = embed_largest(&mut p, &fixture("biden_1.jpg"));
    let e: Vec<_> = faces.iter().map(|f| f.embedding.clone().unwrap()).collect();
    let direct = e[0].cosine(&o) + e[1].cosine(&b);
    let swapped = e[0].cosine(&b) + e[1].cosine(&o);
    assert!(
        (direct - swapped).abs() > 0.3,
        "faces are told apart: {direct} vs {swapped}"
    );
}

#[test]
fn landmarks_sit_inside_the_face_box_in_frame_pixels() {
    let mut p = pipeline();
    let img = frame::read_image(&fixture("obama_1.jpg"), frame::DEFAULT_MAX_PIXELS).unwrap();
    let faces = p.detect(&img).unwrap();
    assert_eq!(faces.len(), 1);
    let f = &faces[0];
    assert_eq!(f.landmarks.len(), 6);
    let b = f.bbox;
    for (i, l) in f.landmarks[..4].iter().enumerate() {
        assert!(
            l.x > b.x && l.x < b.x + b.w && l.y > b.y && l.y < b.y + b.h,
            "landmark {i} {l:?} outside {b:?}"
        );
    }
    // Image-left eye left of image-right eye, both above the nose, nose above the mouth.
    let [le, re, nose, mouth] = [
        f.landmarks[0],
        f.landmarks[1],
        f.landmarks[2],
        f.landmarks[3],
    ];
    assert!(le.x < re.x && le.y < nose.y && re.y < nose.y && nose.y < mouth.y);
}

#[test]
fn scale_changes_leave_the_embedding_nearly_unchanged() {
    let mut p = pipeline();
    let img = frame::read_image(&fixture("obama_1.jpg"), frame::DEFAULT_MAX_PIXELS).unwrap();
    let base = embed_largest(&mut p, &fixture("obama_1.jpg"));
    for scale in [0.6f32, 1.5, 2.5] {
        let (w, h) = (
            (img.width() as f32 * scale) as u32,
            (img.height() as f32 * scale) as u32,
        );
        let to_src = Affine::scale_translate(1.0 / scale, 0.0, 0.0);
        let resized = facegate::vision::resample::warp(&img, &to_src, w, h);
        let faces = p.analyse(&resized).unwrap();
        let e = faces[0].embedding.clone().unwrap();
        let c = e.cosine(&base);
        eprintln!("scale {scale}: cosine to original {c:.4}");
        assert!(c > 0.9, "scale {scale}: cosine {c}");
    }
}

#[test]
fn camera_formats_give_the_same_faces_as_the_decoded_jpeg() {
    let mut p = pipeline();
    let bytes = std::fs::read(fixture("obama_1.jpg")).unwrap();
    let rgb = frame::decode_image(&bytes, frame::DEFAULT_MAX_PIXELS).unwrap();
    let (w, h) = rgb.dimensions();
    let base = p.analyse(&rgb).unwrap()[0].embedding.clone().unwrap();
    // MJPEG: the JPEG bytes as a camera frame.
    let mjpeg = frame::to_rgb(
        &bytes,
        w,
        h,
        frame::PixelFormat::Mjpeg,
        frame::DEFAULT_MAX_PIXELS,
    )
    .unwrap();
    assert_eq!(mjpeg, rgb);
    // YUYV: encode the RGB frame as BT.601 YUYV, convert back, compare the embedding.
    let mut yuyv = Vec::with_capacity((w * h * 2) as usize);
    for px in rgb.as_raw().chunks_exact(6) {
        let y = |p: &[u8]| {
            (16.0 + 0.257 * p[0] as f32 + 0.504 * p[1] as f32 + 0.098 * p[2] as f32).round() as u8
        };
        let avg = |c: usize| (px[c] as f32 + px[c + 3] as f32) / 2.0;
        let (r, g, b) = (avg(0), avg(1), avg(2));
        let u = (128.0 - 0.148 * r - 0.291 * g + 0.439 * b).round() as u8;
        let v = (128.0 + 0.439 * r - 0.368 * g - 0.071 * b).round() as u8;
        yuyv.extend_from_slice(&[y(&px[0..3]), u, y(&px[3..6]), v]);
    }
    let from_yuyv = frame::to_rgb(
        &yuyv,
        w,
        h,
        frame::PixelFormat::Yuyv,
        frame::DEFAULT_MAX_PIXELS,
    )
    .unwrap();
    let e = p.analyse(&from_yuyv).unwrap()[0].embedding.clone().unwrap();
    assert!(
        e.cosine(&base) > 0.97,
        "YUYV round trip cosine {}",
        e.cosine(&base)
    );
    // Grey: still finds the face.
    let grey: Vec<u8> = rgb
        .pixels()
        .map(|q| ((q.0[0] as u32 * 77 + q.0[1] as u32 * 150 + q.0[2] as u32 * 29) >> 8) as u8)
        .collect();
    let g = frame::to_rgb(
        &grey,
        w,
        h,
        frame::PixelFormat::Grey,
        frame::DEFAULT_MAX_PIXELS,
    )
    .unwrap();
    assert_eq!(p.detect(&g).unwrap().len(), 1);
}

#[test]
fn truncated_and_non_image_input_give_clear_errors() {
    let bytes = std::fs::read(fixture("obama_1.jpg")).unwrap();
    let truncated = frame::decode_image(&bytes[..bytes.len() / 3], frame::DEFAULT_MAX_PIXELS);
    match truncated {
        Err(VisionError::Image { reason, .. }) => assert!(reason.contains("truncated"), "{reason}"),
        Err(e) => panic!("wrong error for a truncated JPEG: {e}"),
        Ok(_) => panic!("a truncated JPEG decoded without error"),
    }
    let dir = tempdir();
    let txt = dir.join("notes.jpg");
    std::fs::write(&txt, "these are not pixels").unwrap();
    let e = must_fail(frame::read_image(&txt, frame::DEFAULT_MAX_PIXELS));
    assert!(
        e.to_string().contains("notes.jpg") && e.to_string().contains("not a supported image"),
        "{e}"
    );
    let e = must_fail(frame::read_image(
        &dir.join("missing.jpg"),
        frame::DEFAULT_MAX_PIXELS,
    ));
    assert!(e.to_string().contains("missing.jpg"), "{e}");
}

#[test]
fn missing_or_corrupt_model_files_are_named() {
    let dir = tempdir();
    for f in [
        "mobilefacenet.toml",
        "blazeface-front-128.toml",
        "blazeface-front-128.onnx",
    ] {
        std::fs::copy(repo().join("models").join(f), dir.join(f)).unwrap();
    }
    // The embedder's ONNX file is missing.
    let e = must_fail(Models::load(
        &dir,
        "blazeface-front-128",
        Some("mobilefacenet"),
    ));
    assert!(e.to_string().contains("mobilefacenet.onnx"), "{e}");
    // A corrupted ONNX file fails its checksum.
    let mut bytes = std::fs::read(repo().join("models/mobilefacenet.onnx")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(dir.join("mobilefacenet.onnx"), bytes).unwrap();
    let e = must_fail(Models::load(
        &dir,
        "blazeface-front-128",
        Some("mobilefacenet"),
    ));
    assert!(matches!(e, VisionError::ModelChecksum { .. }), "{e}");
    // An unknown model name lists what is there.
    let e = find_card(&dir, "facenet-512", ModelKind::Embedder).unwrap_err();
    assert!(e.to_string().contains("mobilefacenet"), "{e}");
    // A card with a misspelled key is refused.
    std::fs::write(dir.join("bad.toml"), "kind = \"embedder\"\nnmae = \"x\"\n").unwrap();
    assert!(ModelCard::read(&dir.join("bad.toml")).is_err());
}

/// The error of a call that must fail (without printing a whole decoded image if not).
fn must_fail<T>(r: Result<T, VisionError>) -> VisionError {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "facegate-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
