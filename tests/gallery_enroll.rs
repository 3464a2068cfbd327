//! Enrollment photos: each refusal has its precise reason; good photos pass.

mod common;

use facegate::gallery::enroll::{
    EnrollError, EnrollRejection, MIN_ENROLL_SHARPNESS, enrollment_face,
};
use facegate::vision::frame;

fn load(name: &str) -> image::RgbImage {
    frame::read_image(&common::fixture(name), frame::DEFAULT_MAX_PIXELS).expect("fixture")
}

fn rejection(r: Result<(facegate::vision::Face, Vec<f32>), EnrollError>) -> EnrollRejection {
    match r {
        Err(EnrollError::Rejected(r)) => r,
        Err(e) => panic!("vision error {e}"),
        Ok((f, _)) => panic!("accepted (sharpness {})", f.quality.sharpness),
    }
}

#[test]
fn good_photos_pass_with_margin() {
    let mut p = common::pipeline();
    for name in ["obama_1.jpg", "obama_2.jpg", "biden_1.jpg", "biden_2.jpg"] {
        let (face, e) = enrollment_face(&mut p, &load(name), None, MIN_ENROLL_SHARPNESS)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(e.len(), 192);
        eprintln!("{name}: sharpness {:.0}", face.quality.sharpness);
        assert!(
            face.quality.sharpness > 1.5 * MIN_ENROLL_SHARPNESS,
            "{name}: sharpness {} too close to the limit",
            face.quality.sharpness
        );
    }
}

#[test]
fn blurred_no_face_and_two_faces_are_refused_with_reasons() {
    let mut p = common::pipeline();
    for name in ["obama_1.jpg", "biden_2.jpg"] {
        let img = load(name);
        let blurred = image::imageops::blur(&img, 3.0);
        match rejection(enrollment_face(
            &mut p,
            &blurred,
            None,
            MIN_ENROLL_SHARPNESS,
        )) {
            EnrollRejection::Blurred { sharpness, min } => {
                eprintln!("{name} blurred (sigma 3): sharpness {sharpness:.0}");
                assert!(sharpness < min);
            }
            EnrollRejection::NoFace => eprintln!("{name} blurred: no face found at all"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        rejection(enrollment_face(
            &mut p,
            &load("no_face_coffee.jpg"),
            None,
            MIN_ENROLL_SHARPNESS
        )),
        EnrollRejection::NoFace
    );
    let two = load("two_people.jpg");
    let r = rejection(enrollment_face(&mut p, &two, None, MIN_ENROLL_SHARPNESS));
    assert!(
        matches!(r, EnrollRejection::SeveralFaces { count } if count >= 2),
        "{r:?}"
    );
    assert!(r.to_string().contains("face index"), "{r}");
    // Picking one face by index works; an index past the last face is refused.
    assert!(enrollment_face(&mut p, &two, Some(0), 0.0).is_ok());
    assert!(matches!(
        rejection(enrollment_face(&mut p, &two, Some(9), 0.0)),
        EnrollRejection::NoSuchFace { index: 9, .. }
    ));
}
