//! The API's real answers against its own OpenAPI document: for each route called here, the
//! JSON body must be valid against the schema the document gives for that route and status
//! (JSON Schema 2020-12, as OpenAPI 3.1 uses, checked by the `jsonschema` crate), and every
//! field of it must be declared by that schema (an open object, such as the error body's
//! further fields, declares any).

mod api_support;
mod common;

use std::sync::Arc;

use api_support::{Options, RecordingDoor, Server, fixture_bytes, json};
use facegate::api::DoorControl;
use serde_json::{Map, Value, json};

/// The OpenAPI document, and checks of bodies against it.
struct Doc(Value);

impl Doc {
    /// The schema of `method path`'s `status` answer (panics when the document has none).
    fn response_schema(&self, method: &str, path: &str, status: u16) -> Value {
        let op = &self.0["paths"][path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in the document");
        let resp = &op["responses"][status.to_string()];
        assert!(
            resp.is_object(),
            "{method} {path}: status {status} is not in the document"
        );
        let schema = &resp["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} {status}: no JSON schema"
        );
        schema.clone()
    }

    /// A validator of `schema`, its `$ref`s resolved against the document's components.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = match schema {
            Value::Object(m) => m.clone(),
            other => panic!("schema {other} is not an object"),
        };
        root.insert("components".into(), self.0["components"].clone());
        jsonschema::draft202012::new(&Value::Object(root)).expect("a valid JSON schema")
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.strip_prefix("#/components/schemas/").expect("local ref");
                let s = &self.0["components"]["schemas"][name];
                assert!(s.is_object(), "unresolved {r}");
                self.resolve(s)
            }
            None => schema,
        }
    }

    /// The properties an object schema declares (through `allOf` too), and whether it admits
    /// others (no properties at all, or `additionalProperties` not false).
    fn declared(&self, schema: &Value, props: &mut Map<String, Value>, open: &mut bool) {
        let s = self.resolve(schema);
        if let Some(parts) = s["allOf"].as_array() {
            for p in parts {
                self.declared(p, props, open);
            }
            return;
        }
        match s["properties"].as_object() {
            Some(p) => props.extend(p.clone()),
            None => *open = true,
        }
        if s["additionalProperties"].is_object() || s["additionalProperties"] == true {
            *open = true;
        }
    }

    /// Paths of the fields in `value` that `schema` does not declare.
    fn undeclared(&self, value: &Value, schema: &Value, at: &str, out: &mut Vec<String>) {
        let s = self.resolve(schema);
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = s[key].as_array() {
                // The branches the value is valid against; one must declare all its fields.
                let mut best: Option<Vec<String>> = None;
                for b in branches {
                    if !self.validator(b).is_valid(value) {
                        continue;
                    }
                    let mut missing = Vec::new();
                    self.undeclared(value, b, at, &mut missing);
                    if best.as_ref().is_none_or(|m| missing.len() < m.len()) {
                        best = Some(missing);
                    }
                }
                match best {
                    Some(missing) => out.extend(missing),
                    None => out.push(format!("{at}: valid against no branch of {key}")),
                }
                return;
            }
        }
        match value {
            Value::Object(fields) => {
                let (mut props, mut open) = (Map::new(), false);
                self.declared(s, &mut props, &mut open);
                for (k, v) in fields {
                    match props.get(k) {
                        Some(p) => self.undeclared(v, p, &format!("{at}.{k}"), out),
                        None if open => {}
                        None => out.push(format!("{at}.{k}")),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item) = s.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.undeclared(v, item, &format!("{at}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }

    /// What is wrong with `body` as the `status` answer of `method path` (empty: nothing).
    fn problems(&self, method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
        let schema = self.response_schema(method, path, status);
        let validator = self.validator(&schema);
        let mut out: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        self.undeclared(body, &schema, "$", &mut out);
        out
    }

    fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let problems = self.problems(method, path, status, body);
        assert!(
            problems.is_empty(),
            "{method} {path} {status} does not match the document: {problems:?}\nbody: {body}"
        );
    }
}

/// Send, and check the answer against the document (route as the document names it).
async fn call(
    doc: &Doc,
    route: (&str, &str),
    request: reqwest::RequestBuilder,
    expect: u16,
) -> Value {
    let (status, body) = json(request.send().await.unwrap()).await;
    assert_eq!(status, expect, "{} {}: {body}", route.0, route.1);
    doc.check(route.0, route.1, status, &body);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_match_the_openapi_schemas_of_their_route_and_status() {
    let o = Options {
        door: Some(Arc::new(RecordingDoor::default()) as Arc<dyn DoorControl>),
        ..Options::default()
    };
    let s = Server::start("api-schema", o).await;
    let (status, doc) = json(s.get("/v1/openapi.json").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let doc = Doc(doc);
    let (admin, viewer) = (s.admin.clone(), s.viewer.clone());

    call(&doc, ("GET", "/healthz"), s.get("/healthz"), 200).await;
    call(&doc, ("GET", "/readyz"), s.get("/readyz"), 200).await;

    // Persons: create (every field), list, read, change.
    let new = json!({
        "id": "obama", "name": "Barack Obama", "external_id": "4711",
        "metadata": {"team": "blue"}, "valid_from": 0,
        "schedule": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                      "from": "00:00", "until": "24:00"}],
    });
    let person = call(
        &doc,
        ("POST", "/v1/persons"),
        s.post("/v1/persons").bearer_auth(&admin).json(&new),
        201,
    )
    .await;
    assert_eq!(person["schedule"][0]["until"], "24:00");
    let biden = json!({"id": "biden", "name": "Joe Biden"});
    call(
        &doc,
        ("POST", "/v1/persons"),
        s.post("/v1/persons").bearer_auth(&admin).json(&biden),
        201,
    )
    .await;
    let page = call(
        &doc,
        ("GET", "/v1/persons"),
        s.get("/v1/persons?limit=1").bearer_auth(&viewer),
        200,
    )
    .await;
    assert_eq!(page["next"], "biden");
    call(
        &doc,
        ("PATCH", "/v1/persons/{id}"),
        s.http
            .patch(s.url("/v1/persons/obama"))
            .bearer_auth(&admin)
            .json(&json!({"valid_until": null, "enabled": true})),
        200,
    )
    .await;

    // Enrollment: a photo stored; the same photo again (200, already enrolled); two photos,
    // one with no face (201 with a rejected result); a face of another person (409).
    let enrolled = call(
        &doc,
        ("POST", "/v1/persons/{id}/faces"),
        s.post_image("/v1/persons/obama/faces", fixture_bytes("obama_1.jpg")),
        201,
    )
    .await;
    let template = enrolled["templates"][0].as_u64().unwrap();
    let again = call(
        &doc,
        ("POST", "/v1/persons/{id}/faces"),
        s.post_image("/v1/persons/obama/faces", fixture_bytes("obama_1.jpg")),
        200,
    )
    .await;
    assert_eq!(again["results"][0]["status"], "already_enrolled");
    let mut form = reqwest::multipart::Form::new();
    for f in ["biden_1.jpg", "no_face_coffee.jpg"] {
        let part = reqwest::multipart::Part::bytes(fixture_bytes(f))
            .file_name(f)
            .mime_str("image/jpeg")
            .unwrap();
        form = form.part("image", part);
    }
    let mixed = call(
        &doc,
        ("POST", "/v1/persons/{id}/faces"),
        s.post("/v1/persons/biden/faces")
            .bearer_auth(&admin)
            .multipart(form),
        201,
    )
    .await;
    assert_eq!(mixed["results"][1]["status"], "rejected", "{mixed}");
    assert_eq!(mixed["results"][1]["reason"], "no_face", "{mixed}");
    call(
        &doc,
        ("GET", "/v1/persons/{id}"),
        s.get("/v1/persons/obama").bearer_auth(&viewer),
        200,
    )
    .await;
    let dup = call(
        &doc,
        ("POST", "/v1/persons/{id}/faces"),
        s.post_image("/v1/persons/biden/faces", fixture_bytes("obama_2.jpg")),
        409,
    )
    .await;
    assert_eq!(dup["person"], "obama");

    // Verify and identify: a match, a refusal, several faces, no face.
    let v = call(
        &doc,
        ("POST", "/v1/verify"),
        s.post("/v1/verify?person=obama")
            .bearer_auth(&viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes("obama_2.jpg")),
        200,
    )
    .await;
    assert_eq!(v["decision"], "granted", "{v}");
    call(
        &doc,
        ("POST", "/v1/verify"),
        s.post("/v1/verify?person=biden")
            .bearer_auth(&viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes("obama_2.jpg")),
        200,
    )
    .await;
    call(
        &doc,
        ("POST", "/v1/verify"),
        s.post("/v1/verify?person=obama")
            .bearer_auth(&viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes("no_face_coffee.jpg")),
        422,
    )
    .await;
    for (photo, decision) in [
        ("obama_2.jpg", "granted"),
        ("two_people.jpg", ""),
        ("no_face_coffee.jpg", "no_face"),
    ] {
        let id = call(
            &doc,
            ("POST", "/v1/identify"),
            s.post("/v1/identify")
                .bearer_auth(&viewer)
                .header("content-type", "image/jpeg")
                .body(fixture_bytes(photo)),
            200,
        )
        .await;
        if !decision.is_empty() {
            assert_eq!(id["decision"], decision, "{photo}: {id}");
        }
    }

    // The audit log, the door.
    let events = call(
        &doc,
        ("GET", "/v1/events"),
        s.get("/v1/events?limit=50").bearer_auth(&viewer),
        200,
    )
    .await;
    assert!(events["events"].as_array().unwrap().len() > 5);
    call(
        &doc,
        ("GET", "/v1/door"),
        s.get("/v1/door").bearer_auth(&viewer),
        200,
    )
    .await;
    call(
        &doc,
        ("POST", "/v1/door/unlock"),
        s.post("/v1/door/unlock")
            .bearer_auth(&admin)
            .json(&json!({"seconds": 3, "reason": "delivery"})),
        200,
    )
    .await;

    // Errors: no token, viewer writing, unknown person, bad parameter, invalid JSON fields.
    call(&doc, ("GET", "/v1/persons"), s.get("/v1/persons"), 401).await;
    call(
        &doc,
        ("POST", "/v1/persons"),
        s.post("/v1/persons").bearer_auth(&viewer).json(&biden),
        403,
    )
    .await;
    call(
        &doc,
        ("GET", "/v1/persons/{id}"),
        s.get("/v1/persons/nobody").bearer_auth(&viewer),
        404,
    )
    .await;
    call(
        &doc,
        ("GET", "/v1/events"),
        s.get("/v1/events?limit=0").bearer_auth(&viewer),
        400,
    )
    .await;
    call(
        &doc,
        ("POST", "/v1/persons"),
        s.post("/v1/persons")
            .bearer_auth(&admin)
            .json(&json!({"name": "x", "nickname": "y"})),
        422,
    )
    .await;

    // Deletions.
    call(
        &doc,
        ("DELETE", "/v1/faces/{id}"),
        s.http
            .delete(s.url(&format!("/v1/faces/{template}")))
            .bearer_auth(&admin),
        200,
    )
    .await;
    call(
        &doc,
        ("DELETE", "/v1/persons/{id}"),
        s.http
            .delete(s.url("/v1/persons/biden"))
            .bearer_auth(&admin),
        200,
    )
    .await;

    // The check finds a field the document does not declare, a wrong type, a missing field,
    // and a status the document does not list.
    let mut extra = person.clone();
    extra["nickname"] = json!("Barry");
    assert_eq!(
        doc.problems("POST", "/v1/persons", 201, &extra),
        ["$.nickname"]
    );
    let mut wrong = person.clone();
    wrong["enabled"] = json!("yes");
    assert_eq!(doc.problems("POST", "/v1/persons", 201, &wrong).len(), 1);
    let mut missing = v.clone();
    missing.as_object_mut().unwrap().remove("threshold");
    assert!(!doc.problems("POST", "/v1/verify", 200, &missing).is_empty());
    let mut day = person.clone();
    day["schedule"][0]["days"][0] = json!("monday");
    assert_eq!(doc.problems("POST", "/v1/persons", 201, &day).len(), 1);
    let mut nested = events.clone();
    nested["events"][0]["colour"] = json!("red");
    assert_eq!(
        doc.problems("GET", "/v1/events", 200, &nested),
        ["$.events[0].colour"]
    );
    let undocumented = std::panic::catch_unwind(|| doc.response_schema("GET", "/healthz", 418));
    assert!(undocumented.is_err());
    s.stop().await;
}
