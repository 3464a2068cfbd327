//! The console's HTML templates (minijinja, auto-escaped) and static assets, all compiled into
//! the binary: the device may be offline, and there is no Node build step.

use minijinja::Environment;
use serde_json::Value;

use crate::access::when::{format_local, local_zone};

/// (name, source) of every template.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    (
        "person_form.html",
        include_str!("templates/person_form.html"),
    ),
    ("persons.html", include_str!("templates/persons.html")),
    ("person_new.html", include_str!("templates/person_new.html")),
    ("person.html", include_str!("templates/person.html")),
    ("enrolled.html", include_str!("templates/enrolled.html")),
    ("camera.html", include_str!("templates/camera.html")),
    ("events.html", include_str!("templates/events.html")),
    ("event_rows.html", include_str!("templates/event_rows.html")),
    ("door.html", include_str!("templates/door.html")),
    ("status.html", include_str!("templates/status.html")),
];

/// A static asset: (name, content type, bytes).
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
];

#[derive(Debug, thiserror::Error)]
#[error("console template {name}: {source}")]
pub struct TemplateError {
    name: String,
    source: minijinja::Error,
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|source| TemplateError {
                    name: (*name).to_owned(),
                    source,
                })?;
        }
        env.add_filter("time", |ms: i64| format_local(ms, &local_zone()));
        env.add_filter("urlseg", |s: String| super::dispatch::enc(&s));
        env.add_filter("bytes", |b: u64| crate::host::human_bytes(b));
        env.add_filter("schedule", |v: minijinja::Value| {
            let windows: Vec<crate::gallery::record::Window> = serde_json::to_value(&v)
                .ok()
                .and_then(|j| serde_json::from_value(j).ok())
                .unwrap_or_default();
            super::forms::schedule_text(&windows).replace('\n', "; ")
        });
        Ok(Templates { env })
    }

    /// Render `name` with `context` (a JSON object).
    pub fn render(&self, name: &str, context: &Value) -> Result<String, TemplateError> {
        let err = |source| TemplateError {
            name: name.to_owned(),
            source,
        };
        self.env
            .get_template(name)
            .map_err(err)?
            .render(minijinja::Value::from_serialize(context))
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes() {
        let t = Templates::new().unwrap();
        let html = t
            .render(
                "error.html",
                &serde_json::json!({"heading": "<b>x</b>", "message": "m", "status": 400}),
            )
            .unwrap();
        assert!(
            html.contains("&lt;b&gt;x&lt;") && !html.contains("<b>x"),
            "{html}"
        );
    }
}
