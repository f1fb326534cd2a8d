//! Shared by the bench targets: running the same work on several threads.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `work(thread, iters)` on each of `threads` threads, started
/// together behind a barrier; returns the wall time of the slowest, which
/// is what `iter_custom` wants for `iters` iterations of "one operation on
/// every thread".
pub fn on_threads(threads: usize, iters: u64, work: impl Fn(u64, u64) + Sync) -> Duration {
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|t| {
                let (start, work) = (&start, &work);
                s.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    work(t, iters);
                    began.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| panic!("a bench thread panicked"))
            })
            .max()
            .unwrap_or_default()
    })
}
