//! The OpenAPI 3.1 document, built with `utoipa`: the paths from the route table
//! ([`super::routes`]), the schemas from the request and response types the table names (their
//! `utoipa::ToSchema` derives; the handlers return the same types), and a self-contained page
//! that renders it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::json;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr,
    Required, Response, ResponseBuilder,
};

use super::auth::Access;
use super::error::ErrorBody;
use super::{Body, JsonType, Reply, Route, routes};

/// The document (built once).
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

fn typed(t: Type) -> Schema {
    ObjectBuilder::new().schema_type(t).build().into()
}

fn binary() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .build()
        .into()
}

fn json_type(name: &str) -> Type {
    match name {
        "integer" => Type::Integer,
        "boolean" => Type::Boolean,
        "number" => Type::Number,
        _ => Type::String,
    }
}

fn json_content(t: &JsonType) -> Content {
    Content::new(Some(Ref::from_schema_name((t.name)())))
}

fn response(status: u16, description: &str, reply: &Reply) -> Response {
    let (media, content) = match reply {
        Reply::Json(t) => ("application/json", json_content(t)),
        Reply::Text => ("text/plain", Content::new(Some(typed(Type::String)))),
        Reply::Html => ("text/html", Content::new(Some(typed(Type::String)))),
        Reply::Jpeg => ("image/jpeg", Content::new(Some(binary()))),
        Reply::Document => ("application/json", Content::new(Some(typed(Type::Object)))),
    };
    let description = match (description, status) {
        ("", 201) => "Created",
        ("", _) => "OK",
        (d, _) => d,
    };
    ResponseBuilder::new()
        .description(description)
        .content(media, content)
        .build()
}

fn error(text: &str) -> Response {
    response(400, text, &Reply::json::<ErrorBody>())
}

fn parameters(r: &Route) -> Vec<Parameter> {
    let path = r
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let numeric = r.path.starts_with("/v1/faces/") || r.path.starts_with("/v1/events/");
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(typed(if numeric {
                    Type::Integer
                } else {
                    Type::String
                })))
                .build()
        });
    let query = r.query.iter().map(|(name, ty, desc)| {
        ParameterBuilder::new()
            .name(*name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(*desc))
            .schema(Some(typed(json_type(ty))))
            .build()
    });
    path.chain(query).collect()
}

/// The errors a route can answer, from what it is: its access, path, body, door and limits.
fn errors(r: &Route) -> Vec<(u16, Response)> {
    let mut out = Vec::new();
    if r.access != Access::Public {
        out.push((401, error("Missing or wrong bearer token.")));
        if r.access == Access::Admin {
            out.push((403, error("The viewer token may only read.")));
        }
    }
    if r.path.contains('{') || r.door {
        out.push((404, error("No such person, face or door.")));
    }
    if r.body != Body::None || !r.query.is_empty() {
        out.push((400, error("Malformed request, image or parameter.")));
    }
    if let Body::Json(_) = r.body {
        out.push((415, error("Not application/json.")));
        out.push((422, error("Valid JSON with invalid fields.")));
    }
    if r.body == Body::Images {
        out.push((413, error("Body or image (pixels) too large.")));
        out.push((415, error("Not an image or multipart body.")));
        out.push((422, error("No usable face; `reason` says why (no_face, several_faces, no_such_face, too_small, too_turned, too_tilted, too_blurred, unusable).")));
        out.push((
            503,
            error("Inference queue full; retry after Retry-After seconds."),
        ));
    }
    if r.path.ends_with("/faces") {
        out.push((
            409,
            error("The face matches another person (`person`, `score`)."),
        ));
    }
    if r.rate_limited {
        out.push((
            429,
            error("Per-client rate limit; retry after Retry-After seconds."),
        ));
    }
    out
}

fn operation(r: &Route) -> Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(r.summary))
        .operation_id(Some(format!("{} {}", r.method, r.path)));
    let params = parameters(r);
    if !params.is_empty() {
        op = op.parameters(Some(params));
    }
    match &r.body {
        Body::None => {}
        Body::Json(t) => {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", json_content(t))
                    .build(),
            ));
        }
        Body::Images => {
            let form = ObjectBuilder::new()
                .property(
                    "image",
                    ArrayBuilder::new().items(RefOr::T(binary())).build(),
                )
                .property(
                    "person",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("verify: the claimed person")),
                );
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("image/jpeg", Content::new(Some(binary())))
                    .content("image/png", Content::new(Some(binary())))
                    .content("multipart/form-data", Content::new(Some(form.build())))
                    .build(),
            ));
        }
    }
    // Statuses in order; an answer named twice keeps its first description.
    let mut responses = BTreeMap::new();
    responses.insert(r.ok.0, response(r.ok.0, "", &r.ok.1));
    for (status, description, reply) in &r.also {
        responses
            .entry(*status)
            .or_insert_with(|| response(*status, description, reply));
    }
    for (status, e) in errors(r) {
        responses.entry(status).or_insert(e);
    }
    for (status, resp) in responses {
        op = op.response(status.to_string(), resp);
    }
    if r.access != Access::Public {
        op = op
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .extensions(Some(Extensions::from_iter([(
                "x-access",
                json!(r.access.as_str()),
            )])));
    }
    op.build()
}

fn method(m: &axum::http::Method) -> Option<HttpMethod> {
    Some(match m.as_str() {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        "HEAD" => HttpMethod::Head,
        "OPTIONS" => HttpMethod::Options,
        _ => return None,
    })
}

/// Every JSON type the routes name, and the types those refer to: name and schema (a name
/// may come more than once, always with the same schema).
fn schemas(routes: &[Route]) -> Vec<(String, RefOr<Schema>)> {
    let mut types = vec![JsonType::of::<ErrorBody>()];
    for r in routes {
        if let Body::Json(t) = r.body {
            types.push(t);
        }
        for reply in std::iter::once(&r.ok.1).chain(r.also.iter().map(|a| &a.2)) {
            if let Reply::Json(t) = reply {
                types.push(*t);
            }
        }
    }
    let mut schemas = Vec::new();
    for t in types {
        schemas.push(((t.name)().into_owned(), (t.schema)()));
        (t.schemas)(&mut schemas);
    }
    schemas
}

fn components(routes: &[Route]) -> ComponentsBuilder {
    let mut components = ComponentsBuilder::new();
    for (name, schema) in schemas(routes) {
        components = components.schema(name, schema);
    }
    components.security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    )
}

fn build() -> OpenApi {
    let table = routes();
    let mut paths = PathsBuilder::new();
    for r in &table {
        match method(&r.method) {
            Some(m) => paths = paths.path(r.path, PathItem::new(m, operation(r))),
            None => {
                tracing::warn!(method = %r.method, path = r.path, "not in the OpenAPI document: unknown method")
            }
        }
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("facegate API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Face-ID access control: persons, enrollment, verify/identify, audit log, door. \
                     Errors are JSON {error, detail}. Mutating routes need the admin bearer token; \
                     read routes the viewer or admin token.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components(&table).build()))
        .build()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_a_route_names_is_in_the_components_and_every_ref_resolves() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for r in routes() {
            let mut named = Vec::new();
            if let Body::Json(t) = r.body {
                named.push((t.name)());
            }
            if let Reply::Json(t) = r.ok.1 {
                named.push((t.name)());
            }
            for name in named {
                assert!(
                    schemas.contains_key(name.as_ref()),
                    "{} {}: {name}",
                    r.method,
                    r.path
                );
            }
        }
        let text = doc.to_string();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "missing schema {name}");
        }
        if std::env::var_os("FACEGATE_PRINT_OPENAPI").is_some() {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        }
    }

    #[test]
    fn no_two_types_share_a_schema_name() {
        let mut seen: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
        for (name, schema) in schemas(&routes()) {
            if let Some(before) = seen.get(&name) {
                assert!(
                    *before == schema,
                    "two types are named {name}: rename one (schema(as = ...))"
                );
            }
            seen.insert(name, schema);
        }
        assert!(seen.contains_key("Refusal") && seen.contains_key("RuleRefusal"));
    }

    #[test]
    fn access_is_an_extension_of_each_protected_operation() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["paths"]["/v1/persons"]["post"]["x-access"], "admin");
        assert_eq!(doc["paths"]["/v1/persons"]["get"]["x-access"], "viewer");
        assert!(doc["paths"]["/healthz"]["get"].get("x-access").is_none());
        assert_eq!(
            doc["paths"]["/v1/persons"]["post"]["security"][0]["bearer"],
            serde_json::json!([])
        );
    }
}
