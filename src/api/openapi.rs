//! The OpenAPI 3.0 document, made from the route table ([`super::routes`]) and hand-written
//! schemas, and a self-contained page that renders it.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::auth::Access;
use super::{Body, routes};

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn error_response(text: &str) -> Value {
    json!({"description": text, "content": {"application/json": {"schema": schema_ref("Error")}}})
}

fn ok_response(status: u16, schema: &str) -> Value {
    let content = match schema {
        "text" => json!({"text/plain": {"schema": {"type": "string"}}}),
        "html" => json!({"text/html": {"schema": {"type": "string"}}}),
        "jpeg" => json!({"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}),
        "object" => json!({"application/json": {"schema": {"type": "object"}}}),
        name => json!({"application/json": {"schema": schema_ref(name)}}),
    };
    json!({"description": if status == 201 { "Created" } else { "OK" }, "content": content})
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let ty = if path.starts_with("/v1/faces/") || path.starts_with("/v1/events/") {
                "integer"
            } else {
                "string"
            };
            json!({"name": name, "in": "path", "required": true, "schema": {"type": ty}})
        })
        .collect()
}

/// The document (built once).
pub fn document() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build).clone()
}

fn build() -> Value {
    let mut paths = Map::new();
    for r in routes() {
        let mut op = Map::new();
        op.insert("summary".into(), json!(r.summary));
        op.insert(
            "operationId".into(),
            json!(format!("{} {}", r.method, r.path)),
        );
        let mut params = path_params(r.path);
        for (name, ty, desc) in r.query {
            params.push(json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": ty}}));
        }
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        match r.body {
            Body::None => {}
            Body::Json(name) => {
                op.insert(
                    "requestBody".into(),
                    json!({"required": true, "content": {"application/json": {"schema": schema_ref(name)}}}),
                );
            }
            Body::Images => {
                let binary = json!({"schema": {"type": "string", "format": "binary"}});
                op.insert(
                    "requestBody".into(),
                    json!({"required": true, "content": {
                        "image/jpeg": binary, "image/png": binary,
                        "multipart/form-data": {"schema": {"type": "object", "properties": {
                            "image": {"type": "array", "items": {"type": "string", "format": "binary"}},
                            "person": {"type": "string", "description": "verify: the claimed person"}
                        }}}
                    }}),
                );
            }
        }
        let mut responses = Map::new();
        responses.insert(r.ok.0.to_string(), ok_response(r.ok.0, r.ok.1));
        if r.access != Access::Public {
            responses.insert(
                "401".into(),
                error_response("Missing or wrong bearer token."),
            );
            if r.access == Access::Admin {
                responses.insert(
                    "403".into(),
                    error_response("The viewer token may only read."),
                );
            }
            op.insert("security".into(), json!([{"bearer": []}]));
            op.insert("x-access".into(), json!(r.access.as_str()));
        }
        if r.path.contains('{') || r.door {
            responses.insert(
                "404".into(),
                error_response("No such person, face or door."),
            );
        }
        if r.body != Body::None || !r.query.is_empty() {
            responses.insert(
                "400".into(),
                error_response("Malformed request, image or parameter."),
            );
        }
        if let Body::Json(_) = r.body {
            responses.insert("415".into(), error_response("Not application/json."));
            responses.insert(
                "422".into(),
                error_response("Valid JSON with invalid fields."),
            );
        }
        if r.body == Body::Images {
            responses.insert(
                "413".into(),
                error_response("Body or image (pixels) too large."),
            );
            responses.insert(
                "415".into(),
                error_response("Not an image or multipart body."),
            );
            responses.insert("422".into(), error_response("No usable face; `reason` says why (no_face, several_faces, no_such_face, too_small, too_turned, too_tilted, too_blurred, unusable)."));
            responses.insert(
                "503".into(),
                error_response("Inference queue full; retry after Retry-After seconds."),
            );
        }
        if r.path.ends_with("/faces") {
            responses.insert(
                "409".into(),
                error_response("The face matches another person (`person`, `score`)."),
            );
        }
        if r.rate_limited {
            responses.insert(
                "429".into(),
                error_response("Per-client rate limit; retry after Retry-After seconds."),
            );
        }
        op.insert("responses".into(), Value::Object(responses));
        let entry = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(r.method.as_str().to_ascii_lowercase(), Value::Object(op));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "facegate API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Face-ID access control: persons, enrollment, verify/identify, audit log, door. \
                Errors are JSON {error, detail}. Mutating routes need the admin bearer token; read routes \
                the viewer or admin token.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    })
}

fn schemas() -> Value {
    let s = |t: &str| json!({"type": t});
    let opt = |t: &str| json!({"type": t, "nullable": true});
    let window = json!({"type": "object", "properties": {
        "days": {"type": "array", "items": {"type": "string", "enum": ["mon","tue","wed","thu","fri","sat","sun"]}},
        "from": s("string"), "until": s("string")}});
    let person_fields = json!({
        "name": s("string"),
        "external_id": opt("string"),
        "metadata": s("object"),
        "enabled": s("boolean"),
        "valid_from": opt("integer"),
        "valid_until": opt("integer"),
        "schedule": {"type": "array", "items": window},
    });
    let with = |extra: Value, required: &[&str]| {
        let mut props = person_fields.as_object().cloned().unwrap_or_default();
        if let Value::Object(e) = extra {
            props.extend(e);
        }
        json!({"type": "object", "additionalProperties": false, "properties": props, "required": required})
    };
    let quality = json!({"type": "object", "properties": {
        "detector_score": s("number"), "face_width_px": s("number"), "eye_distance_px": s("number"),
        "roll_deg": s("number"), "yaw_deg": s("number"), "sharpness": s("number")}});
    let candidate = json!({"type": "object", "properties": {"person": s("string"), "template": s("integer"), "score": s("number")}});
    let decision = json!({"type": "string", "enum": ["granted", "denied", "unknown", "no_face"]});
    json!({
        "Error": {"type": "object", "required": ["error", "detail"], "properties": {
            "error": s("string"), "detail": s("string"), "reason": s("string")}},
        "Health": {"type": "object", "properties": {"status": s("string")}},
        "Ready": {"type": "object", "properties": {"status": s("string"), "models": s("object"), "gallery": s("object"), "milvus": s("object")}},
        "NewPerson": with(json!({"id": s("string")}), &["name"]),
        "PersonPatch": with(json!({}), &[]),
        "Person": with(json!({"id": s("string"), "created_ms": s("integer"), "updated_ms": s("integer")}), &["id", "name"]),
        "PersonWithFaces": {"type": "object", "properties": {"person": schema_ref("Person"), "faces": {"type": "array", "items": s("integer")}}},
        "PersonPage": {"type": "object", "properties": {"persons": {"type": "array", "items": schema_ref("Person")}, "next": opt("string")}},
        "Removed": {"type": "object", "properties": {"removed": {"type": "object", "properties": {
            "persons": s("integer"), "templates": s("integer"), "outbox_entries": s("integer"), "remote_confirmed": s("boolean")}}}},
        "Enrollment": {"type": "object", "properties": {
            "person": s("string"), "enrolled": s("integer"), "rejected": s("integer"),
            "templates": {"type": "array", "items": s("integer")}, "remote_confirmed": s("boolean"),
            "results": {"type": "array", "items": {"type": "object", "properties": {
                "index": s("integer"), "filename": opt("string"), "status": {"type": "string", "enum": ["enrolled", "rejected"]},
                "template": s("integer"), "quality": quality.clone(), "error": s("string"), "detail": s("string"), "reason": s("string")}}}}},
        "Verification": {"type": "object", "properties": {
            "person": s("string"), "name": opt("string"), "score": opt("number"), "threshold": s("number"), "match": s("boolean"),
            "decision": decision.clone(), "reason": opt("string"), "template": opt("integer"), "faces_in_image": s("integer")}},
        "Identification": {"type": "object", "properties": {
            "threshold": s("number"), "decision": decision.clone(),
            "faces": {"type": "array", "items": {"type": "object", "properties": {
                "index": s("integer"), "box": s("object"), "quality": quality, "usable": s("boolean"),
                "decision": decision, "reason": opt("string"), "person": opt("string"), "name": opt("string"),
                "score": opt("number"), "candidates": {"type": "array", "items": candidate}}}}}},
        "EventPage": {"type": "object", "properties": {"next": opt("string"), "events": {"type": "array", "items": {"type": "object", "properties": {
            "id": s("integer"), "time_ms": s("integer"), "action": s("string"), "outcome": s("string"), "source": s("string"),
            "person": s("string"), "template": s("integer"), "score": s("number"), "reason": s("string"), "quality": s("object"),
            "face_crop": {"type": "boolean", "description": "A face crop is stored (GET /v1/events/{id}/face); absent when not."}}}}}},
        "DoorStatus": {"type": "object", "properties": {"state": s("string"), "unlocked": s("boolean"), "unlocked_until_ms": opt("integer"), "open": opt("boolean"), "frames_per_s": opt("number")}},
        "Unlock": {"type": "object", "additionalProperties": false, "properties": {"seconds": s("integer"), "reason": s("string")}},
    })
}

/// `/v1/docs`: fetches `/v1/openapi.json` and lists its routes. No external resources.
pub const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facegate API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}
h1{font-size:1.5em} table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}
code{font-size:.95em} .m{font-weight:bold;font-family:monospace} .GET{color:#06c} .POST{color:#070} .PATCH{color:#a60} .DELETE{color:#c00}
.acc{font-size:.85em;color:#555} details{font-size:.9em;color:#444}
</style></head><body>
<h1>facegate API</h1>
<p id="info">Loading <a href="/v1/openapi.json">/v1/openapi.json</a>&hellip;</p>
<table><thead><tr><th>Method</th><th>Path</th><th>Access</th><th>What it does</th></tr></thead><tbody id="routes"></tbody></table>
<script>
fetch('/v1/openapi.json').then(r => r.json()).then(doc => {
  document.getElementById('info').textContent = doc.info.description + ' Version ' + doc.info.version + '.';
  const body = document.getElementById('routes');
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const tr = document.createElement('tr');
      const m = method.toUpperCase();
      const params = (op.parameters || []).map(p => p.name + ' (' + p.in + ')').join(', ');
      const codes = Object.keys(op.responses || {}).join(', ');
      tr.innerHTML = '<td class="m ' + m + '"></td><td><code></code></td><td class="acc"></td><td><span></span><details><summary>details</summary><div></div></details></td>';
      tr.children[0].textContent = m;
      tr.children[1].firstChild.textContent = path;
      tr.children[2].textContent = op['x-access'] || 'public';
      tr.children[3].querySelector('span').textContent = op.summary;
      tr.children[3].querySelector('div').textContent = (params ? 'Parameters: ' + params + '. ' : '') + 'Responses: ' + codes + '.';
      body.appendChild(tr);
    }
  }
}).catch(e => { document.getElementById('info').textContent = 'Could not load the API description: ' + e; });
</script></body></html>
"#;
