//! What the unit tests share.

/// `cases` per property, or `PROPTEST_CASES` when set (for a longer hunt:
/// `PROPTEST_CASES=1000000 cargo test -p http1-client --release proptest`).
pub(crate) fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    proptest::test_runner::Config {
        cases,
        // Failures are reported with their minimal input; no regression
        // files are written into the source tree.
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
