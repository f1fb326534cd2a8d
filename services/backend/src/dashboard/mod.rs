//! The backend's live page at `/dashboard`: charts of its own traffic
//! (`/api/stats`) and the faults in force (`/api/faults`, shown read-only),
//! served with the files every dashboard shares from
//! [`serving::dashboard`].
//!
//! Depends on `serving` only; [`crate::routes`] names its answers.

use serving::dashboard::{Asset, Page};

/// `/dashboard` and `/dashboard/{file}` on the backend.
pub static PAGE: Page = Page::new(
    include_str!("index.html"),
    &[Asset {
        name: "backend.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("backend.js"),
    }],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_files_it_serves_and_stays_small() {
        for src in PAGE.html.split("\"/dashboard/").skip(1) {
            let name = src.split('?').next().unwrap_or_default();
            assert_ne!(
                PAGE.asset(name, None).status(),
                http::StatusCode::NOT_FOUND,
                "{name}"
            );
        }
        assert!(!PAGE.html.contains("<style") && !PAGE.html.contains(" style="));
        assert!(!PAGE.html.contains("<script>"));
        assert!(PAGE.weight() < 200 * 1024, "{} bytes", PAGE.weight());
    }
}
