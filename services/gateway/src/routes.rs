//! The gateway's own routes, listed once in [`ROUTES`], and the dispatch of
//! every request on hyper: a request for one of them goes to its handler,
//! any other path on the public port to `proxy::handle`.
//!
//! The table gives routing, the `Allow` header of a 405 (a route's methods
//! in table order, HEAD after GET) and the `http_route` metric label
//! ([`classify`]; proxied requests are `/*`). A path below a route's
//! literal part that no route matches (`/api/stats`, `/api/servers/a/b`) is
//! still the gateway's own: a 404, never proxied. Adding a route is a row
//! here plus its handler.
//!
//! Depends on [`admin`], [`proxy`], [`crate::reports`] and
//! [`crate::dashboard`] (the handlers),
//! `upstream` (each worker's client, handed to the proxy);
//! `serving::methods` for templates and 405s, `serving::server` for the
//! handler trait.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;

use futures_util::future::Either;
use http::{Method, Request};
use hyper::body::Incoming;
use prometheus::Registry as MetricsRegistry;
use serving::methods::{self, Param, Template};
use serving::metrics::RouteInfo;
use serving::server::Response;
use serving::shutdown::Readiness;

use crate::admin::{self, AdminState, Changes};
use crate::dashboard;
use crate::proxy::{self, ProxyState};
use crate::reports::{healthz, metrics, readyz, settings, stats, About};
use crate::upstream::Upstream;

/// Everything the routes share.
#[derive(Debug)]
pub struct AppState {
    /// The proxied path's state (registry, balancer, client, stats).
    pub proxy: Arc<ProxyState>,
    /// The admin API's state.
    pub admin: Arc<AdminState>,
    /// What `/metrics` exports.
    pub metrics_registry: MetricsRegistry,
    /// What `/readyz` reports.
    pub readiness: Readiness,
    /// What `/api/settings` reports.
    pub about: About,
}

/// One of the gateway's own routes.
#[derive(Debug)]
pub struct Route {
    /// Its path, and its `http_route` label.
    pub template: Template,
    /// Which listeners answer it.
    pub on: On,
    /// The methods it answers, each with its handler; GET answers HEAD.
    pub methods: &'static [(Method, Handler)],
}

/// Which listeners answer a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// The public port and the separate admin listener.
    Both,
    /// The public port only.
    Public,
}

/// What answers a request for a route.
pub type Handler = fn(Call) -> Answer;

/// A handler's answer: ready at once, or a boxed future for those with
/// something to wait for (a body, the registry's lock or state file), as
/// for the proxied path: unboxed, the largest would size every request's
/// future, and be copied with it.
pub type Answer = Either<Ready<Response>, Pin<Box<dyn Future<Output = Response> + Send>>>;

/// What a handler gets.
#[derive(Debug)]
pub struct Call {
    /// The shared state.
    pub state: Arc<AppState>,
    /// Whether this listener may change the registry.
    pub changes: Changes,
    /// The request as hyper parsed it.
    pub request: Request<Incoming>,
    param: Param,
}

impl Call {
    /// The template's `{…}` segment, as sent.
    pub fn param(&self) -> &str {
        self.param.of(self.request.uri().path())
    }
}

fn now(response: Response) -> Answer {
    Either::Left(ready(response))
}

fn later(answer: impl Future<Output = Response> + Send + 'static) -> Answer {
    Either::Right(Box::pin(answer))
}

/// A call to an admin handler of one server, by the name in the path.
fn named<F>(
    c: Call,
    handler: fn(Arc<AdminState>, Changes, String, Request<Incoming>) -> F,
) -> Answer
where
    F: Future<Output = Response> + Send + 'static,
{
    let name = c.param().to_owned();
    later(handler(c.state.admin.clone(), c.changes, name, c.request))
}

/// The gateway's own routes.
pub const ROUTES: &[Route] = &[
    Route {
        template: Template::new("/api/servers"),
        on: On::Both,
        methods: &[
            (Method::GET, |c| now(admin::list(&c.state.admin))),
            (Method::POST, |c| {
                later(admin::create(c.state.admin.clone(), c.changes, c.request))
            }),
        ],
    },
    Route {
        template: Template::new("/api/servers/{name}"),
        on: On::Both,
        methods: &[
            (Method::GET, |c| now(admin::show(&c.state.admin, c.param()))),
            (Method::PUT, |c| named(c, admin::put)),
            (Method::PATCH, |c| named(c, admin::patch)),
            (Method::DELETE, |c| named(c, admin::delete)),
        ],
    },
    // On both listeners, read-only: the dashboard served on the admin
    // listener polls it there.
    Route {
        template: Template::new("/api/stats/{window}"),
        on: On::Both,
        methods: &[(Method::GET, |c| {
            now(stats(&c.state.proxy, c.param(), c.request.uri().query()))
        })],
    },
    Route {
        template: Template::new("/api/settings"),
        on: On::Both,
        methods: &[(Method::GET, |c| now(settings(&c.state.about, c.changes)))],
    },
    Route {
        template: Template::new("/dashboard"),
        on: On::Both,
        methods: &[(Method::GET, |_| now(dashboard::PAGE.index()))],
    },
    Route {
        template: Template::new("/dashboard/{file}"),
        on: On::Both,
        methods: &[(Method::GET, |c| {
            now(dashboard::PAGE.asset(c.param(), c.request.uri().query()))
        })],
    },
    Route {
        template: Template::new("/metrics"),
        on: On::Both,
        methods: &[(Method::GET, |c| {
            now(metrics(&c.state.proxy, &c.state.metrics_registry))
        })],
    },
    Route {
        template: Template::new("/healthz"),
        on: On::Both,
        methods: &[(Method::GET, |_| now(healthz()))],
    },
    Route {
        template: Template::new("/readyz"),
        on: On::Both,
        methods: &[(Method::GET, |c| now(readyz(&c.state.readiness)))],
    },
];

/// Where a path lands in the table.
#[derive(Debug, Clone, Copy)]
pub enum Found {
    /// A route matches it.
    Route(&'static Route, Param),
    /// It is below a route's literal part, but no route matches it: a 404.
    Unmatched(&'static Route),
    /// Not one of the gateway's paths: proxied on the public port.
    Elsewhere,
}

/// Finds `path` in [`ROUTES`], as the public port sees it: a path no route
/// claims is proxied, even one a template would match with its trailing
/// `/` (`/healthz/` goes to the backends).
pub fn find(path: &str) -> Found {
    // Most requests are proxied: one pass of cheap prefix checks says so.
    let Some(claimed) = ROUTES.iter().find(|r| r.template.claims(path)) else {
        return Found::Elsewhere;
    };
    match matching(path) {
        Some((route, param)) => Found::Route(route, param),
        None => Found::Unmatched(claimed),
    }
}

/// The route whose template matches `path`.
fn matching(path: &str) -> Option<(&'static Route, Param)> {
    ROUTES
        .iter()
        .find_map(|r| r.template.matches(path).map(|p| (r, p)))
}

/// The `http_route` label of `path`: its route's template, `/*` when
/// proxied. The gateway's stats windows are recorded by the proxy itself,
/// which knows the backend; the observer only does server metrics.
pub fn classify(path: &str) -> RouteInfo {
    let template = match find(path) {
        Found::Route(route, _) | Found::Unmatched(route) => route.template.as_str(),
        Found::Elsewhere => "/*",
    };
    RouteInfo {
        template,
        counted: false,
    }
}

/// One listener's requests: the routes it answers, and on the public port
/// everything else proxied.
#[derive(Debug, Clone)]
pub struct Routes {
    state: Arc<AppState>,
    listener: Listener,
}

/// Which listener a [`Routes`] serves.
#[derive(Debug, Clone)]
enum Listener {
    /// With this worker's upstream connections for the proxied path.
    Public {
        upstream: Arc<Upstream>,
        changes: Changes,
    },
    /// The separate admin listener: its routes only, nothing proxied.
    Admin,
}

impl Routes {
    /// The public port. `changes` says whether the registry may be changed
    /// here (not when a separate admin listener exists).
    pub fn public(state: Arc<AppState>, upstream: Arc<Upstream>, changes: Changes) -> Self {
        Routes {
            state,
            listener: Listener::Public { upstream, changes },
        }
    }

    /// The separate admin listener: the registration API, plus health and
    /// metrics so it can be probed and scraped on its own.
    pub fn admin(state: Arc<AppState>) -> Self {
        Routes {
            state,
            listener: Listener::Admin,
        }
    }

    fn own(&self, request: Request<Incoming>, found: Found) -> Answer {
        let (changes, public) = match &self.listener {
            Listener::Public { changes, .. } => (*changes, true),
            Listener::Admin => (Changes::Allowed, false),
        };
        let Found::Route(route, param) = found else {
            return now(methods::not_found());
        };
        if route.on == On::Public && !public {
            return now(methods::not_found());
        }
        let method = request.method();
        let Some((_, handler)) = route
            .methods
            .iter()
            .find(|(m, _)| methods::answers(m, method))
        else {
            return now(methods::method_not_allowed(
                route.methods.iter().map(|(m, _)| m),
            ));
        };
        handler(Call {
            state: self.state.clone(),
            changes,
            request,
            param,
        })
    }
}

impl serving::server::Handler for Routes {
    fn call(
        &self,
        request: Request<Incoming>,
        connection: &serving::connection::Connection,
    ) -> impl Future<Output = Response> + Send + use<> {
        let path = request.uri().path();
        let found = match &self.listener {
            Listener::Public { upstream, .. } => match find(path) {
                // Boxed: unboxed, the proxy's future made every request's
                // future larger, and hyper moves it as it goes (callgrind:
                // +0.9k instructions of memcpy per proxied request, more
                // than the allocation saves).
                Found::Elsewhere => {
                    return later(proxy::handle(
                        request,
                        connection.peer(),
                        self.state.proxy.clone(),
                        upstream.clone(),
                    ))
                }
                found => found,
            },
            // Nothing is proxied here, so nothing needs claiming first.
            Listener::Admin => match matching(path) {
                Some((route, param)) => Found::Route(route, param),
                None => Found::Elsewhere,
            },
        };
        self.own(request, found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(path: &str) -> &'static str {
        classify(path).template
    }

    #[test]
    fn own_paths_are_labelled_by_template_and_the_rest_is_proxied() {
        for (path, template) in [
            ("/api/servers", "/api/servers"),
            ("/api/servers/", "/api/servers"),
            ("/api/servers/a", "/api/servers/{name}"),
            ("/api/servers/a/b", "/api/servers/{name}"),
            ("/api/stats", "/api/stats/{window}"),
            ("/api/stats/1m", "/api/stats/{window}"),
            ("/api/stats/nope/x", "/api/stats/{window}"),
            ("/metrics", "/metrics"),
            ("/healthz", "/healthz"),
            ("/readyz", "/readyz"),
            ("/api/settings", "/api/settings"),
            ("/dashboard", "/dashboard"),
            ("/dashboard/", "/dashboard"),
            ("/dashboard/app.js", "/dashboard/{file}"),
            ("/dashboard/a/b", "/dashboard/{file}"),
        ] {
            assert_eq!(label(path), template, "{path}");
        }
        for path in [
            "/",
            "",
            "*",
            "/api/data",
            "/api/serversx",
            "/api/statsx",
            "/metrics/",
            "/healthz/x",
            "//api/servers",
            "/api//stats/1m",
        ] {
            assert_eq!(label(path), "/*", "{path}");
            assert!(matches!(find(path), Found::Elsewhere), "{path}");
        }
    }

    #[test]
    fn unmatched_own_paths_are_not_proxied() {
        for path in [
            "/api/stats",
            "/api/stats/",
            "/api/servers/a/b",
            "/api/servers//",
        ] {
            assert!(matches!(find(path), Found::Unmatched(_)), "{path}");
        }
    }

    #[test]
    fn every_template_is_listed_once() {
        let mut templates: Vec<_> = ROUTES.iter().map(|r| r.template.as_str()).collect();
        templates.sort_unstable();
        templates.dedup();
        assert_eq!(templates.len(), ROUTES.len());
    }
}
