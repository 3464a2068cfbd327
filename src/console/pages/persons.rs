//! Persons: list and search, create, show and edit the rules, delete (after a confirmation),
//! and enroll from uploaded photos with each photo's result.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{api_failure, notice};
use crate::console::dispatch::{self, enc};
use crate::console::forms::{self, PersonForm};
use crate::console::session::Session;
use crate::console::{Ctx, PageResult};
use crate::gallery::Person;

/// Persons read for one listing at most (pages of 1,000).
const LIST_MAX: usize = 5000;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    q: String,
    done: Option<String>,
}

pub async fn list(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let needle = q.q.trim().to_lowercase();
    let mut shown: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    let mut read = 0usize;
    let mut truncated = false;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/persons?limit=1000&after={}", enc(a)),
            None => "/v1/persons?limit=1000".to_owned(),
        };
        let answer = ctx.api.get(me.access, &path).await;
        if !answer.ok() {
            return Err(api_failure(&ctx, &me, &answer));
        }
        let page = answer.json();
        let persons = page["persons"].as_array().cloned().unwrap_or_default();
        read += persons.len();
        for p in persons {
            let hit = needle.is_empty()
                || ["id", "name", "external_id"].iter().any(|k| {
                    p[*k]
                        .as_str()
                        .is_some_and(|s| s.to_lowercase().contains(&needle))
                });
            if hit {
                shown.push(p);
            }
        }
        after = page["next"].as_str().map(str::to_owned);
        if after.is_none() {
            break;
        }
        if read >= LIST_MAX {
            truncated = true;
            break;
        }
    }
    Ok(ctx.page(
        "persons.html",
        Some(&me),
        json!({"nav": "persons", "persons": shown, "q": q.q, "truncated": truncated,
               "notice": notice(q.done.as_deref())}),
    ))
}

pub async fn new_form(State(ctx): State<Ctx>, Extension(me): Extension<Session>) -> PageResult {
    if !me.is_admin() {
        return Err(ctx.error(
            StatusCode::FORBIDDEN,
            Some(&me),
            "Signed in with the viewer token: you can look, not change.",
        ));
    }
    Ok(ctx.page(
        "person_new.html",
        Some(&me),
        json!({"nav": "persons", "form": forms::blank()}),
    ))
}

pub async fn create(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Form(form): Form<PersonForm>,
) -> PageResult {
    ctx.check_csrf(&me, &form.csrf)?;
    // Bad input: the form again, with what was typed and why.
    let again = |why: String, status: StatusCode| {
        ctx.page_with(
            status,
            "person_new.html",
            Some(&me),
            &mut json!({"nav": "persons", "form": form.view(), "error": why}),
        )
    };
    let new = form
        .new_person()
        .map_err(|why| again(why, StatusCode::UNPROCESSABLE_ENTITY))?;
    let answer = ctx
        .api
        .send_json(me.access, Method::POST, "/v1/persons", &new)
        .await;
    if !answer.ok() {
        return Err(again(answer.detail(), answer.status));
    }
    let id = answer.json()["id"].as_str().unwrap_or_default().to_owned();
    Ok(Redirect::to(&format!("/console/persons/{}?done=created", enc(&id))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ShowQuery {
    done: Option<String>,
}

/// A person and their faces, from the API.
pub(super) async fn load(
    ctx: &Ctx,
    me: &Session,
    id: &str,
) -> Result<(Person, Value), axum::response::Response> {
    let answer = ctx
        .api
        .get(me.access, &format!("/v1/persons/{}", enc(id)))
        .await;
    if !answer.ok() {
        return Err(api_failure(ctx, me, &answer));
    }
    let v = answer.json();
    let person: Person = serde_json::from_value(v["person"].clone()).map_err(|e| {
        ctx.error(
            StatusCode::BAD_GATEWAY,
            Some(me),
            &format!("the API's person: {e}"),
        )
    })?;
    Ok((person, v["faces"].clone()))
}

pub async fn show(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> PageResult {
    let (person, faces) = load(&ctx, &me, &id).await?;
    Ok(ctx.page(
        "person.html",
        Some(&me),
        json!({"nav": "persons", "form": forms::view_of(&person), "person": person,
               "faces": faces, "notice": notice(q.done.as_deref())}),
    ))
}

pub async fn update(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<PersonForm>,
) -> PageResult {
    ctx.check_csrf(&me, &form.csrf)?;
    let (person, faces) = load(&ctx, &me, &id).await?;
    let again = |why: String, status: StatusCode| {
        ctx.page_with(
            status,
            "person.html",
            Some(&me),
            &mut json!({"nav": "persons", "person": person, "faces": faces,
                        "form": form.view(), "error": why}),
        )
    };
    let patch = form
        .patch()
        .map_err(|why| again(why, StatusCode::UNPROCESSABLE_ENTITY))?;
    let answer = ctx
        .api
        .send_json(
            me.access,
            Method::PATCH,
            &format!("/v1/persons/{}", enc(&id)),
            &patch,
        )
        .await;
    if !answer.ok() {
        return Err(again(answer.detail(), answer.status));
    }
    Ok(Redirect::to(&format!("/console/persons/{}?done=saved", enc(&id))).into_response())
}

pub async fn confirm_delete(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Path(id): Path<String>,
) -> PageResult {
    if !me.is_admin() {
        return Err(ctx.error(
            StatusCode::FORBIDDEN,
            Some(&me),
            "Signed in with the viewer token: you can look, not change.",
        ));
    }
    let (person, faces) = load(&ctx, &me, &id).await?;
    let n = faces.as_array().map_or(0, Vec::len);
    Ok(ctx.page(
        "confirm.html",
        Some(&me),
        json!({
            "nav": "persons",
            "heading": format!("Delete {}?", person.name),
            "message": format!(
                "{} (id {}) and their {n} face template(s) are deleted, here and in the central \
                 gallery. They are no longer recognised. This cannot be undone.",
                person.name, person.id),
            "action": format!("/console/persons/{}/delete", enc(&id)),
            "button": "Delete",
            "back": format!("/console/persons/{}", enc(&id)),
        }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn delete(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    ctx.check_csrf(&me, &form.csrf)?;
    let answer = ctx
        .api
        .call(
            me.access,
            Method::DELETE,
            &format!("/v1/persons/{}", enc(&id)),
            None,
            Vec::new(),
        )
        .await;
    if !answer.ok() {
        return Err(api_failure(&ctx, &me, &answer));
    }
    Ok(Redirect::to("/console/persons?done=deleted").into_response())
}

/// Enrollment from uploaded photos: the form's files go to the API's enrollment route in one
/// request; the page shows each photo's result (enrolled, or refused and why).
pub async fn enroll(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Path(id): Path<String>,
    mut form: Multipart,
) -> PageResult {
    let mut csrf = String::new();
    let mut allow_duplicate = false;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(ctx.error(e.status(), Some(&me), &e.body_text())),
        };
        let name = field.name().unwrap_or("").to_owned();
        let filename = field.file_name().map(str::to_owned);
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return Err(ctx.error(e.status(), Some(&me), &e.body_text())),
        };
        match (name.as_str(), filename) {
            ("csrf", _) => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            ("allow_duplicate", _) => allow_duplicate = true,
            ("photos", Some(f)) if !bytes.is_empty() => files.push((f, bytes.to_vec())),
            _ => {}
        }
    }
    ctx.check_csrf(&me, &csrf)?;
    let (person, _) = load(&ctx, &me, &id).await?;
    if files.is_empty() {
        return Err(ctx.error(
            StatusCode::BAD_REQUEST,
            Some(&me),
            "No photo was chosen: pick one or more JPEG or PNG photos of the face.",
        ));
    }
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let (content_type, body) = dispatch::multipart(&files)
        .map_err(|e| ctx.error(StatusCode::INTERNAL_SERVER_ERROR, Some(&me), &e.to_string()))?;
    let path = format!(
        "/v1/persons/{}/faces?allow_duplicate={allow_duplicate}",
        enc(&id)
    );
    let answer = ctx
        .api
        .call(me.access, Method::POST, &path, Some(&content_type), body)
        .await;
    let v = answer.json();
    // Enrolled (201, with results); none enrolled of several (results in the error); one photo
    // refused (the error is that photo's result).
    let results: Vec<Value> = match v.get("results").and_then(Value::as_array) {
        Some(r) => r.clone(),
        None if !answer.ok() && v.get("detail").is_some() && names.len() == 1 => {
            let mut one = v.clone();
            one["status"] = json!("rejected");
            one["filename"] = json!(names[0]);
            vec![one]
        }
        None => return Err(api_failure(&ctx, &me, &answer)),
    };
    let enrolled = results.iter().filter(|r| r["status"] == "enrolled").count();
    let status = if enrolled > 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(ctx.page_with(
        status,
        "enrolled.html",
        Some(&me),
        &mut json!({"nav": "persons", "person": person.id, "person_name": person.name,
                    "results": results, "enrolled": enrolled,
                    "rejected": results.len() - enrolled}),
    ))
}
