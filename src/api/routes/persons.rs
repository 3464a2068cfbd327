//! `/v1/persons`: create, list, read, change, delete.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::access::EventSource;
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::responses::{PersonPage, PersonRemoved, PersonWithFaces};
use crate::gallery::{NewPerson, Person, PersonPatch};

pub async fn create(
    State(api): State<AppState>,
    ApiJson(new): ApiJson<NewPerson>,
) -> ApiResult<Response> {
    let person = api.gallery.create_person(new).await?;
    tracing::info!(person = %person.id, "person created");
    let mut r = (StatusCode::CREATED, Json(&person)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/persons/{}", person.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

pub const MAX_PAGE: usize = 1000;

pub async fn list(
    State(api): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<PersonPage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit = {limit}: use 1-{MAX_PAGE}"
        )));
    }
    let persons = api.gallery.persons(q.after.as_deref(), limit).await?;
    let next = if persons.len() == limit {
        persons.last().map(|p| p.id.clone())
    } else {
        None
    };
    Ok(Json(PersonPage { persons, next }))
}

pub async fn get_one(
    State(api): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PersonWithFaces>> {
    let person = api
        .gallery
        .person(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no person with id {id:?}")))?;
    let faces = api.gallery.templates_of(&id).await?;
    Ok(Json(PersonWithFaces { person, faces }))
}

pub async fn update(
    State(api): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<PersonPatch>,
) -> ApiResult<Json<Person>> {
    let person = api.gallery.update_person(&id, patch).await?;
    tracing::info!(person = %id, "person changed");
    Ok(Json(person))
}

pub async fn remove(
    State(api): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PersonRemoved>> {
    let removed = api
        .cases
        .remove_person(EventSource::Api, &id)
        .await
        .map_err(|e| crate::api::routes::recognize::case_error(&api, e))?;
    Ok(Json(PersonRemoved {
        person: id,
        removed,
    }))
}
