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

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serving::body::BodyError;
use warp::reply::Response;
use warp::{Filter, Rejection};

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

/// Every `/api/servers` route.
pub fn routes(
    state: Arc<AdminState>,
    changes: Changes,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("api" / "servers")
        .and(serving::methods::get_or_head())
        .and(with_state(state.clone()))
        .map(list);
    let create = warp::path!("api" / "servers")
        .and(warp::post())
        .and(authorized(state.clone(), changes))
        .and(limited_body(state.max_body_bytes))
        .and_then(create);
    let show = warp::path!("api" / "servers" / String)
        .and(serving::methods::get_or_head())
        .and(with_state(state.clone()))
        .and_then(show);
    let put = warp::path!("api" / "servers" / String)
        .and(warp::put())
        .and(authorized(state.clone(), changes))
        .and(limited_body(state.max_body_bytes))
        .and_then(put);
    let patch = warp::path!("api" / "servers" / String)
        .and(warp::patch())
        .and(authorized(state.clone(), changes))
        .and(limited_body(state.max_body_bytes))
        .and_then(patch);
    let delete = warp::path!("api" / "servers" / String)
        .and(warp::delete())
        .and(authorized(state, changes))
        .and_then(delete);
    list.or(create)
        .unify()
        .or(show)
        .unify()
        .or(put)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
}

fn with_state(
    state: Arc<AdminState>,
) -> impl Filter<Extract = (Arc<AdminState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Passes the state on when the request may change the registry.
fn authorized(
    state: Arc<AdminState>,
    changes: Changes,
) -> impl Filter<Extract = (Arc<AdminState>,), Error = Rejection> + Clone {
    // Read raw: a header that is not valid text counts as missing (401),
    // rather than failing the route with a misleading rejection.
    warp::header::headers_cloned()
        .map(|headers: http::HeaderMap| {
            headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .and(with_state(state))
        .and_then(
            move |header: Option<String>, state: Arc<AdminState>| async move {
                if changes == Changes::Refused {
                    return Err(warp::reject::custom(AdminError::AdminElsewhere));
                }
                match check_token(state.token.as_deref(), header.as_deref()) {
                    Ok(()) => Ok(state),
                    Err(e) => Err(warp::reject::custom(e)),
                }
            },
        )
}

/// 401 without a bearer token, 403 with a wrong one. Compared in constant
/// time so response timing reveals nothing about the token.
pub fn check_token(expected: Option<&str>, header: Option<&str>) -> Result<(), AdminError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let presented = header
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(AdminError::Unauthorized)?;
    if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(AdminError::Forbidden)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// The body, refused past `limit` whether or not the client sent a
/// `Content-Length` (chunked bodies are counted as they arrive).
fn limited_body(limit: usize) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    serving::body::limited(limit).and_then(|body: Result<Bytes, BodyError>| async move {
        body.map_err(|e| {
            warp::reject::custom(match e {
                BodyError::TooLarge(limit) => AdminError::BodyTooLarge(limit),
                BodyError::Read(message) => AdminError::InvalidBody(message),
            })
        })
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

fn list(state: Arc<AdminState>) -> Response {
    let servers: Vec<_> = state
        .registry
        .snapshot()
        .backends
        .iter()
        .map(|b| b.view())
        .collect();
    serving::errors::json_response(StatusCode::OK, &serde_json::json!({ "servers": servers }))
}

async fn show(name: String, state: Arc<AdminState>) -> Result<Response, Rejection> {
    let backend = state
        .registry
        .get(&name)
        .ok_or_else(|| warp::reject::custom(AdminError::NotFound(name)))?;
    Ok(serving::errors::json_response(
        StatusCode::OK,
        &backend.view(),
    ))
}

/// Validates a spec and applies the registration policy to its URL as
/// parsed (what will be connected to).
fn check_spec(state: &AdminState, spec: &ServerSpec) -> Result<(), Rejection> {
    let base = spec
        .validate()
        .map_err(|e| warp::reject::custom(AdminError::InvalidField(e)))?;
    state
        .policy
        .check(&base.url)
        .map_err(|e| warp::reject::custom(AdminError::DestinationNotAllowed(e)))
}

async fn create(state: Arc<AdminState>, body: Bytes) -> Result<Response, Rejection> {
    let spec: ServerSpec = parse_json(&body).map_err(warp::reject::custom)?;
    check_spec(&state, &spec)?;
    let (outcome, backend) = state
        .registry
        .register(&spec, Source::Api)
        .await
        .map_err(|e| warp::reject::custom(AdminError::from(e)))?;
    if outcome == Registered::Created {
        tracing::info!(name = %backend.name, url = %backend.url, weight = backend.weight, "server registered");
    }
    Ok(serving::errors::json_response(
        status_for(outcome),
        &backend.view(),
    ))
}

async fn put(name: String, state: Arc<AdminState>, body: Bytes) -> Result<Response, Rejection> {
    validate_name(&name).map_err(|e| warp::reject::custom(AdminError::InvalidField(e)))?;
    let body: PutBody = parse_json(&body).map_err(warp::reject::custom)?;
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(warp::reject::custom(AdminError::InvalidBody(format!(
            "name: {:?} in the body does not match {name:?} in the path",
            body.name.unwrap_or_default()
        ))));
    }
    let spec = ServerSpec {
        name,
        url: body.url,
        weight: body.weight,
    };
    check_spec(&state, &spec)?;
    let (outcome, backend) = state
        .registry
        .upsert(&spec, Source::Api)
        .await
        .map_err(|e| warp::reject::custom(AdminError::from(e)))?;
    if outcome != Registered::Unchanged {
        tracing::info!(name = %backend.name, url = %backend.url, weight = backend.weight, ?outcome, "server registered");
    }
    Ok(serving::errors::json_response(
        status_for(outcome),
        &backend.view(),
    ))
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

async fn patch(name: String, state: Arc<AdminState>, body: Bytes) -> Result<Response, Rejection> {
    let body: PatchBody = parse_json(&body).map_err(warp::reject::custom)?;
    let draining = matches!(body.state, PatchState::Draining);
    let backend = state
        .registry
        .set_draining(&name, draining)
        .ok_or_else(|| warp::reject::custom(AdminError::NotFound(name)))?;
    tracing::info!(name = %backend.name, state = backend.health.state().as_str(), "server state set by operator");
    Ok(serving::errors::json_response(
        StatusCode::OK,
        &backend.view(),
    ))
}

async fn delete(name: String, state: Arc<AdminState>) -> Result<Response, Rejection> {
    let removed = state
        .registry
        .remove(&name)
        .await
        .map_err(|e| warp::reject::custom(AdminError::from(e)))?;
    match removed {
        Some(b) => {
            tracing::info!(name = %b.name, in_flight = b.active.load(std::sync::atomic::Ordering::Relaxed), "server removed");
            Ok(warp::Reply::into_response(StatusCode::NO_CONTENT))
        }
        None => Err(warp::reject::custom(AdminError::NotFound(name))),
    }
}

fn status_for(outcome: Registered) -> StatusCode {
    match outcome {
        Registered::Created => StatusCode::CREATED,
        Registered::Replaced | Registered::Unchanged => StatusCode::OK,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(check_token(None, None).is_ok());
        assert!(matches!(
            check_token(Some("t"), None),
            Err(AdminError::Unauthorized)
        ));
        assert!(matches!(
            check_token(Some("t"), Some("Basic dA==")),
            Err(AdminError::Unauthorized)
        ));
        assert!(matches!(
            check_token(Some("t"), Some("Bearer x")),
            Err(AdminError::Forbidden)
        ));
        assert!(matches!(
            check_token(Some("t"), Some("Bearer tt")),
            Err(AdminError::Forbidden)
        ));
        assert!(matches!(
            check_token(Some("tt"), Some("Bearer t")),
            Err(AdminError::Forbidden)
        ));
        assert!(check_token(Some("t"), Some("Bearer t")).is_ok());
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
