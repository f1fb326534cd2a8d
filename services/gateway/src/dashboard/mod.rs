//! The gateway's live page at `/dashboard`: its HTML and script (the
//! backend table, admin actions and settings), served with the files every
//! dashboard shares from [`serving::dashboard`]. The page reads only the
//! gateway's public JSON API (`/api/stats`, `/api/servers`,
//! `/api/settings`) and changes the registry only through `/api/servers`,
//! with the token the user types, so it has no powers of its own.
//!
//! Depends on `serving` only; [`crate::routes`] names its answers.

use serving::dashboard::{Asset, Page};

/// `/dashboard` and `/dashboard/{file}` on the gateway.
pub static PAGE: Page = Page::new(
    include_str!("index.html"),
    &[Asset {
        name: "gateway.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("gateway.js"),
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
