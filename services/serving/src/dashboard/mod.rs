//! The live dashboard both services serve at `/dashboard`: the page's files
//! embedded in the binary, and the answers that serve them.
//!
//! A service gives its own page (HTML and one script) as a [`Page`]; the
//! files all pages share (the vendored uPlot, the stylesheet and
//! `dashboard.js`, which polls `/api/stats` and draws the charts) are here,
//! so each binary holds one copy. uPlot is read from `scenario/vendor/uplot`,
//! the copy the scenario report inlines (one pinned copy in the repository).
//!
//! Every answer carries a Content-Security-Policy that allows scripts,
//! styles and `fetch` from the page's own origin only (no inline code, no
//! framing), `X-Content-Type-Options: nosniff` and `Referrer-Policy:
//! no-referrer`. The HTML names each file with `?v=<hash of every file>`, so
//! files asked for with the current hash can be cached for good
//! (`immutable`) while the HTML itself is revalidated on every load: a new
//! binary's page never runs an old script.
//!
//! Depends on `response` only.

use std::sync::OnceLock;

use http::{header, HeaderValue, StatusCode};

use crate::response::Response;

/// One embedded file, served as `/dashboard/{name}`.
#[derive(Debug)]
pub struct Asset {
    /// The last path segment.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The files every dashboard uses, in addition to its page's own.
pub const SHARED: &[Asset] = &[
    Asset {
        name: "uplot.js",
        content_type: JS,
        body: include_bytes!("../../../../scenario/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        name: "uplot.css",
        content_type: CSS,
        body: include_bytes!("../../../../scenario/vendor/uplot/uPlot.min.css"),
    },
    Asset {
        name: "dashboard.css",
        content_type: CSS,
        body: include_bytes!("dashboard.css"),
    },
    Asset {
        name: "dashboard.js",
        content_type: JS,
        body: include_bytes!("dashboard.js"),
    },
];

/// The policy of every dashboard answer. `connect-src 'self'` is what keeps
/// the page from talking to anything but the service that served it;
/// `img-src data:` is for the browser's own favicon-less tab, nothing else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One service's dashboard: its HTML, whose `@V@` marks stand for the
/// version query of its files, and its own files besides [`SHARED`].
#[derive(Debug)]
pub struct Page {
    /// The HTML, with `@V@` where the version goes.
    pub html: &'static str,
    /// Files only this page uses.
    pub assets: &'static [Asset],
    /// The HTML with `@V@` replaced and the version, made on first use.
    rendered: OnceLock<(String, String)>,
}

impl Page {
    /// A page from its HTML and its own files.
    pub const fn new(html: &'static str, assets: &'static [Asset]) -> Page {
        Page {
            html,
            assets,
            rendered: OnceLock::new(),
        }
    }

    /// The version of this page's files: a hash of them all, so it changes
    /// whenever one does.
    pub fn version(&self) -> &str {
        &self.rendered().1
    }

    fn rendered(&self) -> &(String, String) {
        self.rendered.get_or_init(|| {
            let version = format!("{:016x}", fnv1a(self.files().map(|a| a.body)));
            (self.html.replace("@V@", &version), version)
        })
    }

    fn files(&self) -> impl Iterator<Item = &'static Asset> + '_ {
        SHARED.iter().chain(self.assets.iter())
    }

    /// `GET /dashboard`.
    pub fn index(&self) -> Response {
        let html = self.rendered().0.clone();
        answer(html.into(), "text/html; charset=utf-8", "no-cache")
    }

    /// `GET /dashboard/{name}`; `query` is the request's query string,
    /// whose `v` says which version the page asked for.
    pub fn asset(&self, name: &str, query: Option<&str>) -> Response {
        let Some(file) = self.files().find(|a| a.name == name) else {
            return crate::methods::not_found();
        };
        let current = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .any(|pair| pair.strip_prefix("v=") == Some(self.version()));
        // Only a file asked for by its current version may be kept for
        // good; any other URL of it must be checked again.
        let cache = if current {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        answer(
            bytes::Bytes::from_static(file.body).into(),
            file.content_type,
            cache,
        )
    }

    /// Total bytes of the page: HTML and every file it loads.
    pub fn weight(&self) -> usize {
        self.rendered().0.len() + self.files().map(|a| a.body.len()).sum::<usize>()
    }

    /// What would break the page under its policy, for each service's tests:
    /// a `/dashboard/` file its HTML names that it does not serve, inline
    /// styles or scripts (the policy blocks them), or a weight of 200 KiB or
    /// more. Empty when there is nothing.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .html
            .split("\"/dashboard/")
            .skip(1)
            .map(|src| src.split('?').next().unwrap_or_default())
            .filter(|name| !self.files().any(|a| a.name == *name))
            .map(|name| format!("names /dashboard/{name}, which it does not serve"))
            .collect();
        if self.html.contains("<style") || self.html.contains(" style=") {
            problems.push("has an inline style".into());
        }
        if self.html.contains("<script>") {
            problems.push("has an inline script".into());
        }
        if self.weight() >= 200 * 1024 {
            problems.push(format!("weighs {} bytes", self.weight()));
        }
        problems
    }
}

fn answer(
    body: crate::response::Body,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, cache),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // For browsers that predate frame-ancestors.
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// FNV-1a over every file: a version tag, not a security measure.
fn fnv1a<'a>(parts: impl Iterator<Item = &'a [u8]>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    static PAGE: Page = Page::new(
        "<script src=\"/dashboard/dashboard.js?v=@V@\"></script>",
        &[],
    );

    fn header<'a>(r: &'a Response, name: &str) -> &'a str {
        r.headers().get(name).unwrap().to_str().unwrap()
    }

    #[test]
    fn the_page_names_its_files_by_version_and_every_answer_is_locked_down() {
        let index = PAGE.index();
        assert_eq!(header(&index, "cache-control"), "no-cache");
        assert!(header(&index, "content-security-policy").contains("frame-ancestors 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert_eq!(header(&index, "x-content-type-options"), "nosniff");
        let v = PAGE.version().to_owned();
        assert_eq!(v.len(), 16);
        let js = PAGE.asset("dashboard.js", Some(&format!("v={v}")));
        assert_eq!(header(&js, "content-type"), JS);
        assert!(header(&js, "cache-control").contains("immutable"));
        let stale = PAGE.asset("dashboard.js", Some("v=0"));
        assert_eq!(header(&stale, "cache-control"), "no-cache");
        assert_eq!(PAGE.asset("uplot.css", None).status(), StatusCode::OK);
        assert_eq!(
            PAGE.asset("../Cargo.toml", None).status(),
            StatusCode::NOT_FOUND
        );
        assert!(PAGE.weight() > 50_000);
    }

    #[test]
    fn problems_name_what_would_break_a_page() {
        assert_eq!(PAGE.problems(), Vec::<String>::new());
        static BROKEN: Page = Page::new(
            "<style>a{}</style><script>1</script><script src=\"/dashboard/gone.js?v=@V@\"></script>",
            &[],
        );
        assert_eq!(
            BROKEN.problems(),
            [
                "names /dashboard/gone.js, which it does not serve",
                "has an inline style",
                "has an inline script"
            ]
        );
    }
}
