//! The registration API under `/api/servers`: JSON in and out.
//!
//! | call | answer |
//! |---|---|
//! | `POST /api/servers` `{"name","url","weight"?}` | 201 created, 200 identical registration already there, 409 name taken |
//! | `PUT /api/servers/{name}` `{"url","weight"?,"name"?}` | 201 created, 200 replaced or unchanged |
//! | `GET /api/servers` | 200 `{"servers": [...]}` (HEAD too) |
//! | `GET /api/servers/{name}` | 200 or 404 (HEAD too) |
//! | `PATCH /api/servers/{name}` `{"state": "draining" \| "up"}` | 200; draining stops new requests, in-flight ones finish |
//! | `DELETE /api/servers/{name}` | 204 or 404; requests in flight to it finish |
//!
//! With a state file, a change is answered once the file holds it; when it
//! cannot be written the answer is 500 `state_not_saved` and nothing
//! changed. URLs are stored and shown as parsed (see
//! [`crate::spec::parse_base_url`]).
//!
//! Bodies are limited (`admin.max_body_bytes`, 64 KiB by default) and must
//! not carry unknown fields. Destinations must pass the registration
//! [`Policy`]. When an admin token is configured, calls that change the
//! registry need `Authorization: Bearer <token>`; with `admin.listen` set,
//! they are only accepted on that listener. Nothing changes on a refused
//! request.
//!
//! Each handler takes the request as hyper parsed it and answers with a
//! `Response`; [`crate::routes`] names them in its table. Depends on
//! `backends` (the registry), `spec`, `policy` and `errors`, and on
//! `serving::server` for bodies.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serving::body::BodyError;
use serving::server::Response;

use crate::backends::{Registered, Registry, Source};
use crate::errors::AdminError;
use crate::policy::Policy;
use crate::spec::{validate_name, ServerSpec};

/// What the admin handlers share.
#[derive(Debug)]
pub struct AdminState {
    /// The registry they change.
    pub registry: Arc<Registry>,
    /// Required bearer token for changes; `None` leaves the API open.
    pub token: Option<String>,
    /// Which destinations may be registered.
    pub policy: Policy,
    /// Largest accepted body.
    pub max_body_bytes: usize,
}

/// Whether this listener may change the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changes {
    /// Reads and changes (the admin listener, or the only one).
    Allowed,
    /// Reads only (the public port when a separate admin listener exists).
    Refused,
}

/// The answer, or the error's JSON answer.
async fn answer(handler: impl Future<Output = Result<Response, AdminError>>) -> Response {
    handler.await.unwrap_or_else(|e| e.into_response())
}

/// Whether `request` may change the registry here: refused outright on a
/// port that takes no changes, else by the token
/// ([`serving::token::check_request`]). Checked before the
/// body is read.
fn authorize<B>(
    state: &AdminState,
    changes: Changes,
    request: &Request<B>,
) -> Result<(), AdminError> {
    if changes == Changes::Refused {
        return Err(AdminError::AdminElsewhere);
    }
    serving::token::check_request(state.token.as_deref(), request).map_err(AdminError::from)
}

/// The body, refused past `max_body_bytes`.
async fn limited_body(state: &AdminState, request: Request<Incoming>) -> Result<Bytes, AdminError> {
    let (parts, body) = request.into_parts();
    serving::server::read_body(&parts.headers, body, state.max_body_bytes)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(limit) => AdminError::BodyTooLarge(limit),
            BodyError::Read(message) => AdminError::InvalidBody(message),
        })
}

/// The body of `PUT /api/servers/{name}`: the name comes from the path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    name: Option<String>,
    url: String,
    weight: Option<u32>,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(AdminError::InvalidBody(
                "the body is empty; expected a JSON object".into(),
            ))
        }
        // serde would also accept a struct written as an array; only
        // objects are part of the API.
        Some(b'{') => {}
        Some(_) => return Err(AdminError::InvalidBody("expected a JSON object".into())),
    }
    // The path makes type errors name their field ("weight: invalid type ...").
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            AdminError::InvalidBody(inner.to_string())
        } else {
            AdminError::InvalidBody(format!("{path}: {inner}"))
        }
    })?;
    deserializer.end().map_err(|e| {
        AdminError::InvalidBody(format!("trailing characters after the JSON object: {e}"))
    })?;
    Ok(value)
}

/// `GET /api/servers`.
pub fn list(state: &AdminState) -> Response {
    let servers: Vec<_> = state
        .registry
        .snapshot()
        .backends
        .iter()
        .map(|b| b.view())
        .collect();
    serving::errors::json_response(StatusCode::OK, &serde_json::json!({ "servers": servers }))
}

/// `GET /api/servers/{name}`.
pub fn show(state: &AdminState, name: &str) -> Response {
    match state.registry.get(name) {
        Some(backend) => serving::errors::json_response(StatusCode::OK, &backend.view()),
        None => AdminError::NotFound(name.to_owned()).into_response(),
    }
}

/// Validates a spec and applies the registration policy to its URL as
/// parsed (what will be connected to).
fn check_spec(state: &AdminState, spec: &ServerSpec) -> Result<(), AdminError> {
    let base = spec.validate().map_err(AdminError::InvalidField)?;
    state
        .policy
        .check(&base.url)
        .map_err(AdminError::DestinationNotAllowed)
}

/// `POST /api/servers`.
pub async fn create(
    state: Arc<AdminState>,
    changes: Changes,
    request: Request<Incoming>,
) -> Response {
    answer(async {
        authorize(&state, changes, &request)?;
        let body = limited_body(&state, request).await?;
        let spec: ServerSpec = parse_json(&body)?;
        check_spec(&state, &spec)?;
        let (outcome, backend) = state.registry.register(&spec, Source::Api).await?;
        if outcome == Registered::Created {
            tracing::info!(name = %backend.name, url = %backend.url, weight = backend.weight, "server registered");
        }
        Ok(serving::errors::json_response(
            status_for(outcome),
            &backend.view(),
        ))
    })
    .await
}

/// `PUT /api/servers/{name}`.
pub async fn put(
    state: Arc<AdminState>,
    changes: Changes,
    name: String,
    request: Request<Incoming>,
) -> Response {
    answer(async {
        authorize(&state, changes, &request)?;
        let body = limited_body(&state, request).await?;
        validate_name(&name).map_err(AdminError::InvalidField)?;
        let body: PutBody = parse_json(&body)?;
        if body.name.as_ref().is_some_and(|n| *n != name) {
            return Err(AdminError::InvalidBody(format!(
                "name: {:?} in the body does not match {name:?} in the path",
                body.name.unwrap_or_default()
            )));
        }
        let spec = ServerSpec {
            name,
            url: body.url,
            weight: body.weight,
        };
        check_spec(&state, &spec)?;
        let (outcome, backend) = state.registry.upsert(&spec, Source::Api).await?;
        if outcome != Registered::Unchanged {
            tracing::info!(name = %backend.name, url = %backend.url, weight = backend.weight, ?outcome, "server registered");
        }
        Ok(serving::errors::json_response(
            status_for(outcome),
            &backend.view(),
        ))
    })
    .await
}

/// The body of `PATCH /api/servers/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    state: PatchState,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum PatchState {
    Draining,
    Up,
}

/// `PATCH /api/servers/{name}`.
pub async fn patch(
    state: Arc<AdminState>,
    changes: Changes,
    name: String,
    request: Request<Incoming>,
) -> Response {
    answer(async {
        authorize(&state, changes, &request)?;
        let body = limited_body(&state, request).await?;
        let body: PatchBody = parse_json(&body)?;
        let draining = matches!(body.state, PatchState::Draining);
        let backend = state
            .registry
            .set_draining(&name, draining)
            .ok_or(AdminError::NotFound(name))?;
        tracing::info!(name = %backend.name, state = backend.health.state().as_str(), "server state set by operator");
        Ok(serving::errors::json_response(
            StatusCode::OK,
            &backend.view(),
        ))
    })
    .await
}

/// `DELETE /api/servers/{name}`.
pub async fn delete(
    state: Arc<AdminState>,
    changes: Changes,
    name: String,
    request: Request<Incoming>,
) -> Response {
    answer(async {
        authorize(&state, changes, &request)?;
        match state.registry.remove(&name).await? {
            Some(b) => {
                tracing::info!(name = %b.name, in_flight = b.active.load(std::sync::atomic::Ordering::Relaxed), "server removed");
                let mut response = Response::default();
                *response.status_mut() = StatusCode::NO_CONTENT;
                Ok(response)
            }
            None => Err(AdminError::NotFound(name)),
        }
    })
    .await
}

fn status_for(outcome: Registered) -> StatusCode {
    match outcome {
        Registered::Created => StatusCode::CREATED,
        Registered::Replaced | Registered::Unchanged => StatusCode::OK,
    }
}
