//! The HTTP API over real HTTP on a loopback port, with real face photos: the enrollment and
//! recognition flow, the audit log, bad input, auth, limits, the door routes, OpenAPI and TLS.

mod api_support;
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use api_support::{Options, RecordingDoor, Server, create_person, fixture_bytes, json};
use facegate::api::{ApiConfig, DoorControl};
use serde_json::{Value, json};

fn multipart_images(files: &[&str]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    for f in files {
        let part = reqwest::multipart::Part::bytes(fixture_bytes(f))
            .file_name(f.to_string())
            .mime_str("image/jpeg")
            .unwrap();
        form = form.part("image", part);
    }
    form
}

async fn events(s: &Server, query: &str) -> Vec<Value> {
    let (status, body) = json(
        s.get(&format!("/v1/events?{query}"))
            .bearer_auth(&s.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_verify_identify_delete_and_the_audit_log() {
    let s = Server::start("api-flow", Options::default()).await;
    create_person(&s, "obama", "Barack Obama").await;
    create_person(&s, "biden", "Joe Biden").await;

    // Creating the same id again: 409.
    let r = s
        .post("/v1/persons")
        .bearer_auth(&s.admin)
        .json(&json!({"id": "obama", "name": "Again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // Enroll: a raw JPEG body, and a multipart form.
    let (status, body) = json(
        s.post_image("/v1/persons/obama/faces", fixture_bytes("obama_1.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["enrolled"], 1);
    let obama_template = body["templates"][0].as_u64().unwrap();
    assert!(body["results"][0]["quality"]["sharpness"].as_f64().unwrap() > 60.0);
    let (status, body) = json(
        s.post("/v1/persons/biden/faces")
            .bearer_auth(&s.admin)
            .multipart(multipart_images(&["biden_1.jpg"]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Obama's second photo onto Biden: the face matches another person → 409 with who and how well.
    let (status, body) = json(
        s.post_image("/v1/persons/biden/faces", fixture_bytes("obama_2.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "duplicate");
    assert_eq!(body["person"], "obama");
    assert!(body["score"].as_f64().unwrap() >= api_support::THRESHOLD as f64);

    // One photo, several faces, no face index: 422 several_faces; an index past the faces: no_such_face.
    let (status, body) = json(
        s.post_image("/v1/persons/obama/faces", fixture_bytes("two_people.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "face_rejected");
    assert_eq!(body["reason"], "several_faces");
    assert!(body["detail"].as_str().unwrap().contains("face index"));
    let (status, body) = json(
        s.post_image(
            "/v1/persons/obama/faces?face=9",
            fixture_bytes("two_people.jpg"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["reason"], "no_such_face");

    // Verify (viewer token): same person granted, different person denied.
    let (status, body) = json(
        s.post("/v1/verify?person=obama")
            .bearer_auth(&s.viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes("obama_2.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "granted", "{body}");
    assert_eq!(body["match"], true);
    assert_eq!(body["name"], "Barack Obama");
    assert!(body["score"].as_f64().unwrap() >= body["threshold"].as_f64().unwrap());
    let form = multipart_images(&["biden_2.jpg"]).text("person", "obama");
    let (status, body) = json(
        s.post("/v1/verify")
            .bearer_auth(&s.viewer)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "denied", "{body}");
    assert_eq!(body["match"], false);
    assert!(body["score"].as_f64().unwrap() < body["threshold"].as_f64().unwrap());

    // Identify: Biden's other photo finds Biden; two people give one result per face; no face.
    let (status, body) = json(
        s.post("/v1/identify")
            .bearer_auth(&s.viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes("biden_2.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "granted", "{body}");
    assert_eq!(body["faces"][0]["person"], "biden");
    assert_eq!(body["faces"][0]["candidates"][0]["person"], "biden");
    assert_eq!(body["faces"].as_array().unwrap().len(), 1);
    let (status, body) = json(
        s.post("/v1/identify")
            .bearer_auth(&s.viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes("two_people.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Obama and Biden together: one result per face, each recognised.
    let faces = body["faces"].as_array().unwrap();
    assert!(faces.len() >= 2, "{body}");
    let mut granted = BTreeSet::new();
    for (i, f) in faces.iter().enumerate() {
        assert_eq!(f["index"], i);
        if f["decision"] == "granted" {
            granted.insert(f["person"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        granted,
        BTreeSet::from(["biden".to_owned(), "obama".to_owned()]),
        "{body}"
    );
    let (status, body) = json(
        s.post("/v1/identify")
            .bearer_auth(&s.viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes("no_face_coffee.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "no_face");
    assert_eq!(body["faces"], json!([]));

    // Several photos: per-photo results; the photo without a face is refused with its reason.
    let (status, body) = json(
        s.post("/v1/persons/obama/faces")
            .bearer_auth(&s.admin)
            .multipart(multipart_images(&["obama_2.jpg", "no_face_coffee.jpg"]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["enrolled"], 1);
    assert_eq!(body["rejected"], 1);
    assert_eq!(body["results"][0]["status"], "enrolled");
    assert_eq!(body["results"][0]["filename"], "obama_2.jpg");
    assert_eq!(body["results"][1]["status"], "rejected");
    assert_eq!(body["results"][1]["reason"], "no_face");
    assert_eq!(body["results"][1]["http_status"], 422);

    // A disabled person is recognised but denied.
    let r = s
        .http
        .patch(s.url("/v1/persons/obama"))
        .bearer_auth(&s.admin)
        .json(&json!({"enabled": false, "external_id": null}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], false);
    assert_eq!(body["external_id"], Value::Null);
    let (_, body) = json(
        s.post("/v1/verify?person=obama")
            .bearer_auth(&s.viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes("obama_2.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["decision"], "denied", "{body}");
    assert_eq!(body["match"], true);
    assert_eq!(body["reason"], "person is disabled");

    // Lists and reads.
    let (status, body) = json(
        s.get("/v1/persons?limit=1")
            .bearer_auth(&s.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["persons"][0]["id"], "biden");
    assert_eq!(body["next"], "biden");
    let (_, body) = json(
        s.get("/v1/persons?after=biden&limit=5")
            .bearer_auth(&s.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["persons"][0]["id"], "obama");
    assert_eq!(body["next"], Value::Null);
    let (status, body) = json(
        s.get("/v1/persons/obama")
            .bearer_auth(&s.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["faces"].as_array().unwrap().len(), 2);

    // Deletion really deletes, and says what it removed.
    let (status, body) = json(
        s.http
            .delete(s.url(&format!("/v1/faces/{obama_template}")))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"]["templates"], 1);
    let r = s
        .http
        .delete(s.url(&format!("/v1/faces/{obama_template}")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (status, body) = json(
        s.http
            .delete(s.url("/v1/persons/obama"))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"]["persons"], 1);
    assert_eq!(body["removed"]["templates"], 1);
    let r = s
        .get("/v1/persons/obama")
        .bearer_auth(&s.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Obama is no longer recognised.
    let (_, body) = json(
        s.post("/v1/identify")
            .bearer_auth(&s.viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes("obama_2.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["decision"], "unknown", "{body}");

    // The audit log has it all, newest first, filtered and paginated.
    let all = events(&s, "limit=1000").await;
    let outcomes: Vec<&str> = all.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    for o in [
        "enrolled", "rejected", "granted", "denied", "unknown", "no_face", "deleted",
    ] {
        assert!(outcomes.contains(&o), "no {o} event in {outcomes:?}");
    }
    let times: Vec<i64> = all.iter().map(|e| e["time_ms"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let granted_obama = events(&s, "person=obama&outcome=granted&action=verify").await;
    assert_eq!(granted_obama.len(), 1, "{granted_obama:?}");
    assert_eq!(granted_obama[0]["action"], "verify");
    assert!(granted_obama[0]["score"].as_f64().unwrap() > 0.4);
    assert!(granted_obama[0]["quality"]["sharpness"].as_f64().is_some());
    let deletions = events(&s, "outcome=deleted").await;
    assert_eq!(deletions.len(), 2);
    assert_eq!(deletions[0]["action"], "delete_person");
    assert_eq!(deletions[1]["action"], "delete_face");
    assert_eq!(deletions[1]["template"], obama_template);
    // Pages of two walk the whole log.
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/events?limit=2&cursor={c}"),
            None => "/v1/events?limit=2".into(),
        };
        let (_, page) = json(s.get(&q).bearer_auth(&s.viewer).send().await.unwrap()).await;
        seen += page["events"].as_array().unwrap().len();
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, all.len());
    let since = times[0];
    let recent = events(&s, &format!("from_ms={since}")).await;
    assert!(!recent.is_empty() && recent.len() < all.len());
    let r = s
        .get("/v1/events?outcome=maybe")
        .bearer_auth(&s.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Metrics: decisions by outcome, stage histograms, gallery size.
    let r = s
        .get("/metrics")
        .bearer_auth(&s.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for needle in [
        "facegate_decisions_total{action=\"verify\",outcome=\"granted\"} 1",
        "facegate_decisions_total{action=\"identify\",outcome=\"granted\"} 3",
        "facegate_stage_seconds_count{stage=\"detect_embed\"}",
        "facegate_stage_seconds_bucket{stage=\"gallery\",le=\"+Inf\"}",
        "facegate_gallery_persons 1",
        "facegate_gallery_templates 1",
        "facegate_outbox_depth 0",
        "facegate_milvus_errors_total 0",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    let (status, body) = json(s.get("/readyz").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["milvus"]["state"], "none");
    assert_eq!(body["models"]["embedder"], "mobilefacenet");
    s.stop().await;
}

/// A PNG of 20000×20000 grey pixels: about 400 kB compressed, 400 MB decoded.
fn huge_png() -> Vec<u8> {
    let dir = common::tmpdir("huge-png");
    let path = dir.join("huge.png");
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut enc = png::Encoder::new(file, 20_000, 20_000);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().unwrap().into_stream_writer().unwrap();
    let row = vec![0u8; 20_000];
    for _ in 0..20_000 {
        std::io::Write::write_all(&mut w, &row).unwrap();
    }
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_status_and_a_clear_message() {
    let mut o = Options::default();
    o.config.max_body_bytes = 2 << 20;
    let s = Server::start("api-bad", o).await;
    create_person(&s, "alice", "Alice").await;

    // (request, expected status, expected error code, a word the detail must contain)
    let jpeg = fixture_bytes("obama_1.jpg");
    let truncated = jpeg[..jpeg.len() / 2].to_vec();
    let png = huge_png();
    assert!(
        png.len() < 2 << 20,
        "the bomb is small: {} bytes",
        png.len()
    );
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str, &str)> = vec![
        (
            "non-image bytes",
            s.post_image("/v1/persons/alice/faces", b"hello, not a picture".to_vec()),
            400,
            "bad_image",
            "not a supported image",
        ),
        (
            "truncated JPEG",
            s.post_image("/v1/persons/alice/faces", truncated.clone()),
            400,
            "bad_image",
            "truncated",
        ),
        (
            "truncated JPEG on identify",
            s.post("/v1/identify")
                .bearer_auth(&s.viewer)
                .header("content-type", "image/jpeg")
                .body(truncated),
            400,
            "bad_image",
            "truncated",
        ),
        (
            "20000x20000 PNG",
            s.post("/v1/identify")
                .bearer_auth(&s.viewer)
                .header("content-type", "image/png")
                .body(png.clone()),
            413,
            "image_too_large",
            "20000x20000",
        ),
        (
            "empty body",
            s.post_image("/v1/persons/alice/faces", Vec::new()),
            400,
            "bad_request",
            "empty body",
        ),
        (
            "wrong content type",
            s.post("/v1/identify")
                .bearer_auth(&s.viewer)
                .header("content-type", "text/plain")
                .body(jpeg.clone()),
            415,
            "unsupported_media_type",
            "image/jpeg",
        ),
        (
            "no content type",
            s.post("/v1/identify")
                .bearer_auth(&s.viewer)
                .body(jpeg.clone()),
            415,
            "unsupported_media_type",
            "no Content-Type",
        ),
        (
            "body over max_body_bytes",
            s.post_image("/v1/persons/alice/faces", vec![0xff; 3 << 20]),
            413,
            "body_too_large",
            "",
        ),
        (
            "multipart without a file",
            s.post("/v1/identify")
                .bearer_auth(&s.viewer)
                .multipart(reqwest::multipart::Form::new().text("note", "hi")),
            400,
            "bad_request",
            "no file part",
        ),
        (
            "no token",
            s.post("/v1/identify")
                .header("content-type", "image/jpeg")
                .body(jpeg.clone()),
            401,
            "unauthorized",
            "Bearer",
        ),
        (
            "wrong token",
            s.get("/v1/persons").bearer_auth("fgt_wrong"),
            401,
            "unauthorized",
            "not valid",
        ),
        (
            "malformed Authorization",
            s.get("/v1/persons").header("authorization", "Basic abc"),
            401,
            "unauthorized",
            "Bearer",
        ),
        (
            "viewer token on an admin endpoint",
            s.post("/v1/persons")
                .bearer_auth(&s.viewer)
                .json(&json!({"name": "Mallory"})),
            403,
            "forbidden",
            "admin",
        ),
        (
            "viewer token deleting",
            s.http
                .delete(s.url("/v1/persons/alice"))
                .bearer_auth(&s.viewer),
            403,
            "forbidden",
            "admin",
        ),
        (
            "unknown person",
            s.get("/v1/persons/nobody").bearer_auth(&s.viewer),
            404,
            "not_found",
            "nobody",
        ),
        (
            "enroll for an unknown person",
            s.post_image("/v1/persons/nobody/faces", fixture_bytes("obama_1.jpg")),
            404,
            "not_found",
            "nobody",
        ),
        (
            "verify an unknown person",
            s.post("/v1/verify?person=nobody")
                .bearer_auth(&s.viewer)
                .header("content-type", "image/jpeg")
                .body(jpeg.clone()),
            404,
            "not_found",
            "nobody",
        ),
        (
            "verify without a person",
            s.post("/v1/verify")
                .bearer_auth(&s.viewer)
                .header("content-type", "image/jpeg")
                .body(jpeg.clone()),
            400,
            "bad_request",
            "person",
        ),
        (
            "unknown face id",
            s.http
                .delete(s.url("/v1/faces/12345"))
                .bearer_auth(&s.admin),
            404,
            "not_found",
            "12345",
        ),
        (
            "face id not a number",
            s.http.delete(s.url("/v1/faces/abc")).bearer_auth(&s.admin),
            400,
            "bad_request",
            "",
        ),
        (
            "invalid JSON",
            s.post("/v1/persons")
                .bearer_auth(&s.admin)
                .header("content-type", "application/json")
                .body("{\"name\": "),
            400,
            "bad_request",
            "",
        ),
        (
            "JSON with an unknown field",
            s.post("/v1/persons")
                .bearer_auth(&s.admin)
                .json(&json!({"name": "Bob", "nmae": "x"})),
            422,
            "invalid",
            "nmae",
        ),
        (
            "JSON with an invalid value",
            s.post("/v1/persons")
                .bearer_auth(&s.admin)
                .json(&json!({"id": "bad id!", "name": "Bob"})),
            422,
            "invalid",
            "person id",
        ),
        (
            "JSON without its content type",
            s.post("/v1/persons")
                .bearer_auth(&s.admin)
                .body("{\"name\": \"Bob\"}"),
            415,
            "unsupported_media_type",
            "",
        ),
        (
            "bad query parameter",
            s.get("/v1/persons?limit=many").bearer_auth(&s.viewer),
            400,
            "bad_request",
            "",
        ),
        (
            "unknown route",
            s.get("/v1/nothing-here"),
            404,
            "not_found",
            "/v1/nothing-here",
        ),
        (
            "wrong method",
            s.http.put(s.url("/v1/persons")).bearer_auth(&s.admin),
            405,
            "method_not_allowed",
            "PUT",
        ),
    ];
    for (what, request, status, error, word) in cases {
        let t = Instant::now();
        let response = request.send().await.unwrap();
        if response.status() == 413 {
            // The unread rest of the body: the server closes the connection and says so.
            assert_eq!(
                response
                    .headers()
                    .get("connection")
                    .and_then(|v| v.to_str().ok()),
                Some("close"),
                "{what}: a 413 must close the connection"
            );
        }
        let (got, body) = json(response).await;
        let ms = t.elapsed().as_millis();
        eprintln!("{what}: {got} {body} ({ms} ms)");
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(body["error"], error, "{what}: {body}");
        let detail = body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no detail"));
        assert!(detail.contains(word), "{what}: {detail:?} lacks {word:?}");
        if what.starts_with("20000") {
            // Refused from the header: decoding 400 MB of pixels would take seconds.
            assert!(
                ms < 1500,
                "the 20000x20000 PNG took {ms} ms: was it decoded?"
            );
        }
        s.assert_alive().await;
    }
    // Nothing was enrolled by any of it, and the server still does real work.
    let (_, body) = json(
        s.get("/v1/persons/alice")
            .bearer_auth(&s.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["faces"], json!([]));
    let (status, body) = json(
        s.post_image("/v1/persons/alice/faces", fixture_bytes("biden_1.jpg"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inference_queue_gives_503_and_the_rate_limit_429() {
    // One slot, no queue: while the slot is taken, image requests are refused at once.
    let mut o = Options::default();
    o.config.inference_slots = 1;
    o.config.queue_depth = 0;
    let s = Server::start("api-busy", o).await;
    let held = s
        .api
        .inference
        .try_admit()
        .expect("the test takes the only slot");
    let r = s
        .post("/v1/identify")
        .bearer_auth(&s.viewer)
        .header("content-type", "image/jpeg")
        .body(fixture_bytes("obama_1.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    let (status, body) = json(r).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "busy");
    s.assert_alive().await;
    drop(held);
    let r = s
        .post("/v1/identify")
        .bearer_auth(&s.viewer)
        .header("content-type", "image/jpeg")
        .body(fixture_bytes("obama_1.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "served once the slot is free");
    let text = s
        .get("/metrics")
        .bearer_auth(&s.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("facegate_busy_rejections_total 1"), "{text}");
    s.stop().await;

    // A bucket of 2, refilled at 1 per minute: the third verify/identify is refused.
    let mut o = Options::default();
    o.config.rate_per_minute = 1;
    o.config.rate_burst = 2;
    let s = Server::start("api-rate", o).await;
    create_person(&s, "p1", "P One").await;
    let identify = || {
        s.post("/v1/identify")
            .bearer_auth(&s.viewer)
            .header("content-type", "image/jpeg")
            .body(b"not an image".to_vec())
    };
    assert_eq!(identify().send().await.unwrap().status(), 400);
    assert_eq!(
        s.post("/v1/verify?person=p1")
            .bearer_auth(&s.viewer)
            .header("content-type", "image/jpeg")
            .body(b"not an image".to_vec())
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let r = identify().send().await.unwrap();
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let (status, body) = json(r).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limited");
    // Other endpoints are not limited.
    for _ in 0..5 {
        assert_eq!(
            s.get("/v1/persons")
                .bearer_auth(&s.viewer)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    s.assert_alive().await;
    let text = s
        .get("/metrics")
        .bearer_auth(&s.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("facegate_rate_limited_total 1"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_routes_exist_only_with_a_door_and_need_the_right_token() {
    // Serve mode: no door.
    let s = Server::start("api-nodoor", Options::default()).await;
    let (status, body) = json(
        s.get("/v1/door")
            .bearer_auth(&s.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], "this facegate has no door (serve mode)");
    let (status, body) = json(
        s.post("/v1/door/unlock")
            .bearer_auth(&s.admin)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no_door");
    assert_eq!(s.get("/v1/door").send().await.unwrap().status(), 401);
    s.stop().await;

    // With a door attached.
    let door = Arc::new(RecordingDoor::default());
    let o = Options {
        door: Some(Arc::clone(&door) as Arc<dyn DoorControl>),
        ..Options::default()
    };
    let s = Server::start("api-door", o).await;
    let (status, body) = json(
        s.get("/v1/door")
            .bearer_auth(&s.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "locked");
    let unlock = |token: Option<&str>| {
        let r = s
            .post("/v1/door/unlock")
            .json(&json!({"seconds": 5, "reason": "delivery"}));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    };
    assert_eq!(unlock(None).send().await.unwrap().status(), 401);
    assert_eq!(
        unlock(Some("fgt_wrong")).send().await.unwrap().status(),
        401
    );
    assert_eq!(unlock(Some(&s.viewer)).send().await.unwrap().status(), 403);
    assert!(
        !door.unlocked.load(Ordering::SeqCst),
        "refused calls did not unlock"
    );
    let (status, body) = json(unlock(Some(&s.admin)).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unlocked"], true);
    let r = s
        .post("/v1/door/unlock")
        .bearer_auth(&s.admin)
        .json(&json!({"seconds": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let unlocks = events(&s, "outcome=unlocked").await;
    assert_eq!(unlocks.len(), 1);
    assert_eq!(unlocks[0]["reason"], "delivery");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_the_router_serves() {
    let o = Options {
        door: Some(Arc::new(RecordingDoor::default()) as Arc<dyn DoorControl>),
        ..Options::default()
    };
    let s = Server::start("api-openapi", o).await;
    let (status, doc) = json(s.get("/v1/openapi.json").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            assert!(op["summary"].is_string(), "{method} {path}: no summary");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "missing schema {name}"
        );
    }
    // The route table is the router's source: the document lists exactly its routes.
    let table: BTreeSet<(String, String)> = facegate::api::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, table);
    // And the router serves each of them: no route gets the unknown-route 404 or a 405.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "1");
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = s.http.request(m, s.url(&concrete)).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path} is not routed: {body}");
        assert!(
            !(status == 404 && body.contains("no route")),
            "{method} {path} is not routed: {body}"
        );
        let public =
            ["/healthz", "/readyz", "/v1/openapi.json", "/v1/docs"].contains(&path.as_str());
        assert_eq!(
            status == 401,
            !public,
            "{method} {path}: {status} without a token"
        );
    }
    let r = s.get("/v1/docs").send().await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(
        html.contains("/v1/openapi.json") && !html.contains("https://"),
        "self-contained page"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_face_crop_is_served_as_jpeg_to_the_admin_token_only() {
    use facegate::access::{Action, EventSource, NewEvent, Outcome};
    let s = Server::start("api-face-crop", Options::default()).await;
    let jpeg = fixture_bytes("obama_1.jpg");
    let with = s
        .api
        .audit
        .append(
            NewEvent::new(Action::Access, Outcome::Granted, EventSource::Door)
                .person("obama")
                .face_jpeg(jpeg.clone()),
        )
        .unwrap();
    let without = s
        .api
        .audit
        .append(NewEvent::new(
            Action::Access,
            Outcome::Unknown,
            EventSource::Door,
        ))
        .unwrap();
    let path = format!("/v1/events/{}/face", with.id);
    let r = s.get(&path).bearer_auth(&s.admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.bytes().await.unwrap().as_ref(), jpeg.as_slice());
    // Biometric data: not for the viewer token, nor without one.
    let (status, body) = json(s.get(&path).bearer_auth(&s.viewer).send().await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(s.get(&path).send().await.unwrap().status(), 401);
    // No crop, no event, not a number.
    for (p, want) in [
        (format!("/v1/events/{}/face", without.id), 404),
        ("/v1/events/987654321/face".to_owned(), 404),
        ("/v1/events/abc/face".to_owned(), 400),
    ] {
        let (status, body) = json(s.get(&p).bearer_auth(&s.admin).send().await.unwrap()).await;
        assert_eq!(status, want, "{p}: {body}");
        assert!(body["detail"].is_string(), "{p}: {body}");
    }
    // The event list says which events have one.
    let listed = events(&s, "source=door").await;
    let flag = |id: u64| {
        listed
            .iter()
            .find(|e| e["id"] == id)
            .map(|e| e["face_crop"].clone())
            .unwrap()
    };
    assert_eq!(flag(with.id), true);
    assert_eq!(flag(without.id), Value::Null);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = common::tmpdir("api-tls-cert");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let tls = facegate::api::tls::server_config(&cert_path, &key_path).expect("TLS config");
    let o = Options {
        tls: Some(tls),
        ..Options::default()
    };
    let s = Server::start("api-tls", o).await;
    let addr: std::net::SocketAddr = s.base.trim_start_matches("https://").parse().unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = |p: &str| format!("https://localhost:{}{p}", addr.port());
    let r = client.get(url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = json(
        client
            .post(url("/v1/persons"))
            .bearer_auth(&s.admin)
            .json(&json!({"id": "tls", "name": "Over TLS"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Plain HTTP to the TLS port gets no answer; a client that does not trust the cert fails.
    assert!(
        s.http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
    );
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", addr)
        .build()
        .unwrap();
    assert!(untrusting.get(url("/healthz")).send().await.is_err());
    // The server goes on serving after the failed handshakes.
    assert_eq!(
        client.get(url("/healthz")).send().await.unwrap().status(),
        200
    );
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_api_section_is_documented_and_checked() {
    let text = facegate::config::default_toml();
    for key in [
        "listen",
        "admin_token_sha256",
        "viewer_token_sha256",
        "tls_cert",
        "tls_key",
        "max_body_bytes",
        "inference_slots",
        "queue_depth",
        "rate_per_minute",
        "rate_burst",
        "audit_path",
        "audit_max_events",
    ] {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "default config lacks api.{key}"
        );
    }
    let parse = |t: &str| facegate::config::Config::parse(t, std::path::Path::new("c.toml"));
    let c = parse(&text).unwrap();
    assert_eq!(c.api, ApiConfig::default());
    assert_eq!(c.api.listen, "127.0.0.1:8080", "loopback by default");
    let e = parse("[api]\nadmin_token_sha256 = \"fgt_secret\"\n").unwrap_err();
    assert!(e.to_string().contains("not the token itself"), "{e}");
    let e = parse("[api]\ntls_cert = \"c.pem\"\n").unwrap_err();
    assert!(e.to_string().contains("tls_key"), "{e}");
    let e = parse("[api]\nlisten = \"8080\"\n").unwrap_err();
    assert!(e.to_string().contains("IP:PORT"), "{e}");
    let e = parse("[api]\nrate_per_minit = 5\n").unwrap_err();
    assert!(
        e.to_string().contains("did you mean `rate_per_minute`"),
        "{e}"
    );
    let e = parse("[api]\nqueue_depth = 100000\n").unwrap_err();
    assert!(e.to_string().contains("queue_depth"), "{e}");
}

/// The deepface set of `../shared/faces` (several web photos per person, 330x512 to
/// 4352x2903): enroll one photo per person through the API, then identify and verify the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_faces_enroll_one_photo_each_then_recognise_the_others() {
    let Some(faces) = common::shared_faces() else {
        return;
    };
    let s = Server::start("api-shared", Options::default()).await;
    let root = faces.join("deepface");
    let mut people: Vec<(String, Vec<std::path::PathBuf>)> = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            let photos = common::images_in(&p);
            if photos.len() >= 4 {
                people.push((
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    photos,
                ));
            }
        }
    }
    people.sort();
    assert!(
        people.len() >= 6,
        "deepface has at least 6 persons with 4+ photos"
    );
    let post = |path: &str, token: &str, file: &std::path::Path| {
        let ct = if file.extension().is_some_and(|e| e == "png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        s.post(path)
            .bearer_auth(token)
            .header("content-type", ct)
            .body(std::fs::read(file).unwrap())
    };
    // Enroll the first photo of each person that is accepted; the rest are probes.
    let mut probes: Vec<(String, std::path::PathBuf)> = Vec::new();
    let mut refused = 0;
    let mut overridden = 0;
    for (id, photos) in &people {
        create_person(&s, id, id).await;
        let mut enrolled = false;
        for photo in photos {
            if enrolled {
                probes.push((id.clone(), photo.clone()));
                continue;
            }
            let (status, body) = json(
                post(&format!("/v1/persons/{id}/faces"), &s.admin, photo)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            match status {
                201 => enrolled = true,
                422 | 409 => {
                    refused += 1;
                    eprintln!("{id} {}: refused: {}", photo.display(), body["detail"]);
                }
                other => panic!("{}: unexpected {other}: {body}", photo.display()),
            }
        }
        if !enrolled {
            // Every photo looked like someone already enrolled (deepface's df_id11 and df_id12
            // are different people who score ~0.5 with MobileFaceNet): the admin override.
            let first = photos.first().unwrap();
            let (status, body) = json(
                post(
                    &format!("/v1/persons/{id}/faces?allow_duplicate=true"),
                    &s.admin,
                    first,
                )
                .send()
                .await
                .unwrap(),
            )
            .await;
            assert_eq!(status, 201, "{id}: override: {body}");
            overridden += 1;
            probes.retain(|(p, _)| p != id);
            probes.extend(photos[1..].iter().map(|p| (id.clone(), p.clone())));
        }
    }
    // Identify every probe.
    let (mut right, mut wrong, mut unknown, mut unusable) = (0, 0, 0, 0);
    for (id, photo) in &probes {
        let (status, body) =
            json(post("/v1/identify", &s.viewer, photo).send().await.unwrap()).await;
        assert_eq!(status, 200, "{}: {body}", photo.display());
        let face = &body["faces"][0];
        match face["decision"].as_str() {
            Some("granted") if face["person"] == id.as_str() => right += 1,
            Some("granted") => {
                wrong += 1;
                eprintln!(
                    "{} ({id}) identified as {}",
                    photo.display(),
                    face["person"]
                );
            }
            Some("unknown") => unknown += 1,
            _ => unusable += 1,
        }
    }
    // Verify each probe against its own person and against the next person.
    let (mut same_ok, mut diff_denied, mut verified) = (0, 0, 0);
    for (i, (id, photo)) in probes.iter().enumerate() {
        let other = &people
            [(people.iter().position(|(p, _)| p == id).unwrap() + 1 + i % 3) % people.len()]
        .0;
        let (s1, same) = json(
            post(&format!("/v1/verify?person={id}"), &s.viewer, photo)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let (s2, diff) = json(
            post(&format!("/v1/verify?person={other}"), &s.viewer, photo)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if s1 != 200 || s2 != 200 {
            assert!(
                s1 == 422 && s2 == 422,
                "{}: {s1} {same} / {s2} {diff}",
                photo.display()
            );
            continue;
        }
        verified += 1;
        same_ok += usize::from(same["decision"] == "granted");
        if diff["decision"] == "denied" {
            diff_denied += 1;
        } else {
            eprintln!(
                "{} ({id}) verified as {other}: score {}",
                photo.display(),
                diff["score"]
            );
            let pair = [id.as_str(), other.as_str()];
            assert!(
                pair.contains(&"df_id11") && pair.contains(&"df_id12"),
                "an impostor verification outside the known lookalike pair: {diff}"
            );
        }
    }
    eprintln!(
        "deepface via the API: {} persons, {refused} enrollment photos refused, {overridden} duplicate override(s); identify {right} right, \
         {wrong} wrong, {unknown} unknown, {unusable} without a usable face, of {}; verify same granted \
         {same_ok}/{verified}, different denied {diff_denied}/{verified}",
        people.len(),
        probes.len()
    );
    let usable = right + wrong + unknown;
    assert!(
        right as f64 >= 0.75 * usable as f64,
        "identified {right} of {usable}"
    );
    assert!(wrong <= 1, "{wrong} probes granted as someone else");
    assert!(same_ok as f64 >= 0.75 * verified as f64);
    assert!(
        diff_denied + 3 >= verified,
        "{diff_denied} of {verified} impostor verifications denied"
    );
    let all = events(&s, "action=identify&limit=1000").await;
    assert!(
        all.len() >= probes.len(),
        "one identify event per face at least"
    );
    s.stop().await;
}
