//! The backend's HTTP routes, listed once in [`ROUTES`]; their handlers are
//! in [`crate::handlers`].
//!
//! | route | what |
//! |---|---|
//! | `GET /api/data` | JSON naming this instance; fault injection applies |
//! | `GET`, `PUT`, `DELETE /api/faults` | the faults in force; change them, clear them ([`crate::faults::api`]) |
//! | `ANY /api/echo[/...]` | the request as received (method, path, query, headers, body), for checking what a proxy forwards |
//! | `GET /healthz` | alive |
//! | `GET /readyz` | ready for traffic (503 once shutdown starts) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /api/stats/{1m,5m,1h}[?series=true]` | windowed stats of this instance's own traffic, with the per-bucket series when asked |
//! | `GET /dashboard`, `/dashboard/{file}` | the live page of those stats and the faults ([`crate::dashboard`]) |
//!
//! Routing, the `Allow` header of a 405 and the metric route label all come
//! from the table; every GET route answers HEAD too.
//!
//! Depends on the backend's `handlers` (the answers, the state they share
//! and how they are called), `faults` (the fault API's answers) and
//! `dashboard` (the page), and on
//! `serving` and `observability`.

use std::future::Future;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use serving::connection::Connection;
use serving::errors::json_response;
use serving::methods::{self, Param, Template};
use serving::metrics::RouteInfo;
use serving::server::Response;

use crate::dashboard;
use crate::faults::api as faults_api;
use crate::handlers::{
    data, echo, later, metrics_reply, now, readiness_reply, stats_reply, Answer, AppState, Call,
    Handler,
};

/// One route.
#[derive(Debug)]
pub struct Route {
    /// Its path, and its `http_route` label.
    pub template: Template,
    /// Whether its requests count in the stats windows (the operational
    /// routes do not).
    pub counted: bool,
    /// What answers it.
    pub methods: Methods,
}

/// The methods a route answers.
#[derive(Debug)]
pub enum Methods {
    /// These, each with its handler; GET answers HEAD.
    Only(&'static [(Method, Handler)]),
    /// Any method, on the template's path and every path below it.
    AnyBelow(Handler),
}

/// The backend's routes.
pub const ROUTES: &[Route] = &[
    Route {
        template: Template::new("/api/data"),
        counted: true,
        methods: Methods::Only(&[(Method::GET, data)]),
    },
    Route {
        template: Template::new("/api/faults"),
        counted: false,
        methods: Methods::Only(&[
            (Method::GET, |c| now(faults_api::view(&c.state.faults))),
            (Method::PUT, |c| {
                later(async move {
                    let token = c.state.admin_token.as_deref();
                    faults_api::put(&c.state.faults, token, c.request, &c.connection).await
                })
            }),
            (Method::DELETE, |c| {
                let token = c.state.admin_token.as_deref();
                now(faults_api::delete(&c.state.faults, token, &c.request))
            }),
        ]),
    },
    Route {
        template: Template::new("/api/echo"),
        counted: true,
        methods: Methods::AnyBelow(|c| later(echo(c.state, c.request))),
    },
    Route {
        template: Template::new("/healthz"),
        counted: false,
        methods: Methods::Only(&[(Method::GET, |_| {
            now(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            ))
        })]),
    },
    Route {
        template: Template::new("/readyz"),
        counted: false,
        methods: Methods::Only(&[(Method::GET, |c| now(readiness_reply(&c.state.readiness)))]),
    },
    Route {
        template: Template::new("/metrics"),
        counted: false,
        methods: Methods::Only(&[(Method::GET, |c| now(metrics_reply(&c.state.registry)))]),
    },
    Route {
        template: Template::new("/api/stats/{window}"),
        counted: false,
        methods: Methods::Only(&[(Method::GET, |c| {
            now(stats_reply(&c.state, c.param(), c.request.uri().query()))
        })]),
    },
    Route {
        template: Template::new("/dashboard"),
        counted: false,
        methods: Methods::Only(&[(Method::GET, |_| now(dashboard::PAGE.index()))]),
    },
    Route {
        template: Template::new("/dashboard/{file}"),
        counted: false,
        methods: Methods::Only(&[(Method::GET, |c| {
            now(dashboard::PAGE.asset(c.param(), c.request.uri().query()))
        })]),
    },
];

/// Where a path lands in the table: the route matching it, or the one it
/// is below (a 404 all the same: the label names the route).
fn find(path: &str) -> Option<(&'static Route, Option<Param>)> {
    ROUTES.iter().find_map(|r| {
        if let Some(param) = r.template.matches(path) {
            return Some((r, Some(param)));
        }
        let below = matches!(r.methods, Methods::AnyBelow(_))
            && path
                .strip_prefix(r.template.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        if below {
            return Some((r, Some(Param::default())));
        }
        r.template.claims(path).then_some((r, None))
    })
}

/// How the observer sees each path: every route but the operational ones
/// counts in the stats windows, and so do unknown paths (`/*`).
pub fn classify(path: &str) -> RouteInfo {
    match find(path) {
        Some((route, _)) => RouteInfo {
            template: route.template.as_str(),
            counted: route.counted,
        },
        None => RouteInfo {
            template: "/*",
            counted: true,
        },
    }
}

/// Every request: routed from [`ROUTES`], and every answer (errors
/// included) marked `X-Served-By: <instance name>` so a client behind a
/// load balancer can tell who answered.
#[derive(Clone)]
pub struct Routes {
    state: Arc<AppState>,
    served_by: Option<HeaderValue>,
}

impl Routes {
    /// Routes for `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        let served_by = HeaderValue::from_str(&state.instance.name).ok();
        Routes { state, served_by }
    }

    fn dispatch(&self, request: Request<Incoming>, connection: &Connection) -> Answer {
        let Some((route, Some(param))) = find(request.uri().path()) else {
            return now(methods::not_found());
        };
        let handler = match &route.methods {
            Methods::AnyBelow(handler) => *handler,
            Methods::Only(listed) => {
                let method = request.method();
                match listed.iter().find(|(m, _)| methods::answers(m, method)) {
                    Some((_, handler)) => *handler,
                    None => return now(methods::method_not_allowed(listed.iter().map(|(m, _)| m))),
                }
            }
        };
        handler(Call::new(
            self.state.clone(),
            request,
            connection.clone(),
            param,
        ))
    }
}

impl serving::server::Handler for Routes {
    fn call(
        &self,
        request: Request<Incoming>,
        connection: &Connection,
    ) -> impl Future<Output = Response> + Send + use<> {
        let answer = self.dispatch(request, connection);
        let served_by = self.served_by.clone();
        async move {
            let mut response = answer.await;
            if let Some(name) = served_by {
                response.headers_mut().insert("x-served-by", name);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_labelled_by_route_and_only_traffic_routes_count() {
        for (path, template, counted) in [
            ("/api/data", "/api/data", true),
            ("/api/data/", "/api/data", true),
            ("/api/echo", "/api/echo", true),
            ("/api/echo/a/b", "/api/echo", true),
            ("/api/stats/1m", "/api/stats/{window}", false),
            ("/api/faults", "/api/faults", false),
            ("/api/stats", "/api/stats/{window}", false),
            ("/healthz", "/healthz", false),
            ("/metrics", "/metrics", false),
            ("/dashboard", "/dashboard", false),
            ("/dashboard/uplot.js", "/dashboard/{file}", false),
            ("/api/echox", "/*", true),
            ("/nowhere", "/*", true),
        ] {
            let info = classify(path);
            assert_eq!((info.template, info.counted), (template, counted), "{path}");
        }
    }
}
