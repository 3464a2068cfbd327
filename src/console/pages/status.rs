//! Status: what `/readyz` reports (models, gallery size, Milvus and its outbox, the decision
//! rule), the door, and the API's work since start from its metrics.

use axum::Extension;
use axum::extract::State;
use serde_json::{Value, json};

use crate::console::session::Session;
use crate::console::{Ctx, PageResult};

/// `name{labels} value` of a Prometheus text line.
fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

/// A JSON value for reading: strings bare, fractions to 4 decimals.
fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .map(|x| {
                format!("{x:.4}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_owned()
            })
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

pub async fn page(State(ctx): State<Ctx>, Extension(me): Extension<Session>) -> PageResult {
    let ready = ctx.api.get(me.access, "/readyz").await.json();
    let milvus = match &ready["milvus"] {
        Value::Null => "not configured".to_owned(),
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    let recognition = match &ready["recognition"] {
        Value::Null => None,
        r => Some(
            r.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k} {}", short(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|| r.to_string()),
        ),
    };
    let door = {
        let a = ctx.api.get(me.access, "/v1/door").await;
        if a.ok() {
            let d = a.json();
            let state = d["state"].as_str().unwrap_or("?").to_owned();
            match d["frames_per_s"].as_f64() {
                Some(fps) if fps > 0.0 => format!("{state}; camera: {fps} frames/s looked at"),
                Some(_) => format!("{state}; camera: no frame in the last 5 s"),
                None => state,
            }
        } else {
            a.detail()
        }
    };
    let metrics = ctx.api.get(me.access, "/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let stages: Vec<Value> = [
        ("decode", "Image decoding"),
        ("detect_embed", "Face detection + embedding"),
        ("gallery", "Gallery search/write"),
    ]
    .iter()
    .map(|(stage, name)| {
        let count = metric(
            &text,
            &format!("facegate_stage_seconds_count{{stage=\"{stage}\"}}"),
        )
        .unwrap_or(0.0);
        let sum = metric(
            &text,
            &format!("facegate_stage_seconds_sum{{stage=\"{stage}\"}}"),
        )
        .unwrap_or(0.0);
        let mean_ms = if count > 0.0 {
            sum / count * 1000.0
        } else {
            0.0
        };
        json!({"name": name, "count": count as u64, "mean_ms": mean_ms})
    })
    .collect();
    Ok(ctx.page(
        "status.html",
        Some(&me),
        json!({
            "nav": "status",
            "ready": ready,
            "milvus": milvus,
            "recognition": recognition,
            "door": door,
            "stages": stages,
            "in_flight": metric(&text, "facegate_inference_in_flight").unwrap_or(0.0) as u64,
            "slots": metric(&text, "facegate_inference_slots").unwrap_or(0.0) as u64,
        }),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_metric_line() {
        let t = "# HELP x\nfacegate_stage_seconds_sum{stage=\"decode\"} 0.25\nfacegate_inference_slots 2\n";
        assert_eq!(
            super::metric(t, "facegate_stage_seconds_sum{stage=\"decode\"}"),
            Some(0.25)
        );
        assert_eq!(super::metric(t, "facegate_inference_slots"), Some(2.0));
        assert_eq!(super::metric(t, "facegate_nothing"), None);
        assert_eq!(
            super::short(&serde_json::json!(0.45419999957084656)),
            "0.4542"
        );
        assert_eq!(super::short(&serde_json::json!(0.001)), "0.001");
        assert_eq!(super::short(&serde_json::json!("image")), "image");
    }
}
