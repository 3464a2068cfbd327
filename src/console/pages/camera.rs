//! Enrollment from the door's own camera (`facegate run`): a live preview with the face box
//! and what the quality checks say, and "capture", which takes the best of the next frames and
//! enrolls it through the API's enrollment route (the same checks, duplicate rule and audit
//! event as an uploaded photo).
//!
//! Camera images are biometric data: every route here is for the admin only (the viewer gets
//! 403), nothing is stored but the enrolled template, and the view keeps frames only while
//! somebody watches ([`crate::access::camera_view`]).

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use image::{Rgb, RgbImage};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api_failure;
use super::persons::load;
use crate::access::camera_view::{CameraView, Seen};
use crate::console::dispatch::enc;
use crate::console::session::Session;
use crate::console::{Ctx, PageResult};

/// Frames a capture looks at, and how long it may take.
pub const CAPTURE_FRAMES: usize = 12;
pub const CAPTURE_WITHIN: Duration = Duration::from_secs(6);
/// Width of the preview image (the frame is scaled down to it).
const PREVIEW_WIDTH: u32 = 480;

fn admin_only(ctx: &Ctx, me: &Session) -> Result<(), Response> {
    if me.is_admin() {
        Ok(())
    } else {
        Err(ctx.error(
            StatusCode::FORBIDDEN,
            Some(me),
            "The door camera's images are for the admin only.",
        ))
    }
}

/// The door's camera view, or why there is none.
fn view(ctx: &Ctx) -> Option<Arc<CameraView>> {
    ctx.state.door.as_ref().and_then(|d| d.camera_view())
}

const NO_CAMERA: &str = "This facegate has no door camera (facegate serve): enroll from photos.";

/// The page: the preview, the advice, the capture button.
pub async fn page(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Path(id): Path<String>,
) -> PageResult {
    admin_only(&ctx, &me)?;
    let (person, _) = load(&ctx, &me, &id).await?;
    let camera = view(&ctx).is_some();
    if let Some(v) = view(&ctx) {
        v.watch();
    }
    Ok(ctx.page(
        "camera.html",
        Some(&me),
        json!({"nav": "persons", "person": person, "camera": camera, "no_camera": NO_CAMERA,
               "frames": CAPTURE_FRAMES}),
    ))
}

/// What the camera sees now, as JSON for the page's script.
pub async fn state(State(ctx): State<Ctx>, Extension(me): Extension<Session>) -> Response {
    if let Err(r) = admin_only(&ctx, &me) {
        return r;
    }
    let Some(v) = view(&ctx) else {
        return (StatusCode::NOT_FOUND, Json(json!({"detail": NO_CAMERA}))).into_response();
    };
    Json(match v.watch() {
        None => json!({"frame": false, "advice": "waiting for the camera…"}),
        Some(s) => json!({
            "frame": true,
            "seq": s.seq,
            "faces": s.faces,
            "usable": s.usable(),
            "advice": s.advice(),
            "quality": s.quality,
        }),
    })
    .into_response()
}

/// The newest frame as a JPEG, scaled down, with the largest face's box drawn (green when
/// usable, amber when not).
pub async fn frame(State(ctx): State<Ctx>, Extension(me): Extension<Session>) -> Response {
    if let Err(r) = admin_only(&ctx, &me) {
        return r;
    }
    let Some(v) = view(&ctx) else {
        return (StatusCode::NOT_FOUND, NO_CAMERA).into_response();
    };
    let Some(seen) = v.watch() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "no camera frame yet",
        )
            .into_response();
    };
    let jpeg = tokio::task::spawn_blocking(move || preview_jpeg(&seen)).await;
    match jpeg {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console: camera preview not encoded");
            (StatusCode::INTERNAL_SERVER_ERROR, "preview not encoded").into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "preview failed").into_response(),
    }
}

fn preview_jpeg(seen: &Seen) -> Result<Vec<u8>, image::ImageError> {
    let img = &*seen.image;
    let scale = (PREVIEW_WIDTH as f32 / img.width().max(1) as f32).min(1.0);
    let (w, h) = (
        ((img.width() as f32 * scale).round() as u32).max(1),
        ((img.height() as f32 * scale).round() as u32).max(1),
    );
    let mut small = if scale < 1.0 {
        image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
    } else {
        img.clone()
    };
    if let Some(b) = seen.face {
        let colour = if seen.usable() {
            Rgb([40, 200, 80])
        } else {
            Rgb([240, 170, 20])
        };
        draw_box(
            &mut small,
            (b.x * scale, b.y * scale, b.w * scale, b.h * scale),
            colour,
        );
    }
    let mut out = Cursor::new(Vec::with_capacity(48 * 1024));
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(&small)?;
    Ok(out.into_inner())
}

/// A 3-pixel rectangle outline, clipped to the image.
fn draw_box(img: &mut RgbImage, (x, y, w, h): (f32, f32, f32, f32), colour: Rgb<u8>) {
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    let (x0, y0) = (x.round() as i64, y.round() as i64);
    let (x1, y1) = ((x + w).round() as i64, (y + h).round() as i64);
    let mut put = |px: i64, py: i64| {
        if (0..iw).contains(&px) && (0..ih).contains(&py) {
            img.put_pixel(px as u32, py as u32, colour);
        }
    };
    for t in 0..3 {
        for px in x0..=x1 {
            put(px, y0 + t);
            put(px, y1 - t);
        }
        for py in y0..=y1 {
            put(x0 + t, py);
            put(x1 - t, py);
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CaptureForm {
    csrf: String,
    allow_duplicate: Option<String>,
}

/// Take the best of the next frames and enroll it; the page shows the result like an upload.
pub async fn capture(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<CaptureForm>,
) -> PageResult {
    ctx.check_csrf(&me, &form.csrf)?;
    admin_only(&ctx, &me)?;
    let (person, _) = load(&ctx, &me, &id).await?;
    let Some(v) = view(&ctx) else {
        return Err(ctx.error(StatusCode::NOT_FOUND, Some(&me), NO_CAMERA));
    };
    let taken = tokio::task::spawn_blocking(move || {
        let best = v.best_of_next(CAPTURE_FRAMES, CAPTURE_WITHIN)?;
        let mut jpeg = Cursor::new(Vec::with_capacity(128 * 1024));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&*best.image)
            .map_err(|e| e.to_string())
            .map(|()| (best.seq, jpeg.into_inner()))
            .map_err(CaptureFailed::Encode)
    })
    .await;
    let (seq, jpeg) = match taken {
        Ok(Ok(v)) => v,
        Ok(Err(CaptureFailed::Camera(e))) => {
            return Err(ctx.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&me),
                &format!("Nothing was enrolled: {e}."),
            ));
        }
        Ok(Err(CaptureFailed::Encode(e))) => {
            tracing::error!(error = %e, "console: captured frame not encoded");
            return Err(ctx.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&me),
                "The captured frame could not be encoded; nothing was enrolled.",
            ));
        }
        Err(_) => {
            return Err(ctx.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&me),
                "The capture failed; nothing was enrolled.",
            ));
        }
    };
    let path = format!(
        "/v1/persons/{}/faces?allow_duplicate={}",
        enc(&id),
        form.allow_duplicate.is_some()
    );
    let answer = ctx
        .api
        .call(me.access, Method::POST, &path, Some("image/jpeg"), jpeg)
        .await;
    let v = answer.json();
    let filename = format!("door camera, frame {seq}");
    // Enrolled (201 with results), already enrolled (200), or refused (the error is the
    // photo's result).
    let mut result = match v.get("results").and_then(Value::as_array) {
        Some(r) if r.len() == 1 => r[0].clone(),
        _ if !answer.ok() && v.get("detail").is_some() => {
            let mut one = v.clone();
            one["status"] = json!("rejected");
            one
        }
        _ => return Err(api_failure(&ctx, &me, &answer)),
    };
    result["filename"] = json!(filename);
    let enrolled = usize::from(result["status"] == "enrolled");
    Ok(ctx.page_with(
        if enrolled > 0 || result["status"] == "already_enrolled" {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        },
        "enrolled.html",
        Some(&me),
        &mut json!({"nav": "persons", "person": person.id, "person_name": person.name,
                    "results": [result], "enrolled": enrolled, "rejected": 1 - enrolled,
                    "camera": true}),
    ))
}

enum CaptureFailed {
    Camera(crate::access::camera_view::CaptureError),
    Encode(String),
}

impl From<crate::access::camera_view::CaptureError> for CaptureFailed {
    fn from(e: crate::access::camera_view::CaptureError) -> CaptureFailed {
        CaptureFailed::Camera(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::{BBox, Quality};
    use std::time::Instant;

    #[test]
    fn the_preview_is_a_scaled_jpeg_with_the_face_box() {
        let seen = Seen {
            seq: 1,
            at: Instant::now(),
            image: Arc::new(RgbImage::from_pixel(960, 720, Rgb([10, 10, 10]))),
            faces: 1,
            face: Some(BBox {
                x: 300.0,
                y: 200.0,
                w: 240.0,
                h: 240.0,
            }),
            quality: Some(Quality {
                detector_score: 0.9,
                face_width_px: 240.0,
                eye_distance_px: 90.0,
                roll_deg: 0.0,
                yaw_deg: 0.0,
                sharpness: 300.0,
            }),
            refusal: None,
        };
        let jpeg = preview_jpeg(&seen).unwrap();
        let img = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (480, 360));
        // The box's left edge (x = 150 at half scale) is green; the middle stays dark.
        let edge = img.get_pixel(151, 160);
        assert!(edge[1] > 150 && edge[0] < 120, "{edge:?}");
        let inside = img.get_pixel(210, 160);
        assert!(inside[1] < 60, "{inside:?}");
    }
}
