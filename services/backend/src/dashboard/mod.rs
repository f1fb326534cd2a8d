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
        assert_eq!(PAGE.problems(), Vec::<String>::new());
    }
}
