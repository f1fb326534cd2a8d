//! Where log lines go: stdout, batched per thread.
//!
//! With an access log line per request, how lines reach stdout matters: a
//! `write(2)` per line, or a hand-off to a writer thread that must be woken
//! for every line, cost the gateway about a tenth of its throughput in the
//! benchmark. Instead, threads that run a tokio runtime collect their lines
//! in a thread-local buffer, and write it out in one call when the runtime
//! is about to go idle (its `on_thread_park` hook calls [`flush_thread`]),
//! when it reaches [`BATCH_BYTES`], or right away after a warning or error.
//! Lines are therefore late by at most one turn of the event loop.
//!
//! Threads that never called [`flush_thread`] (plain threads, start-up code)
//! write each line directly. Writes take the process-wide stdout lock, so
//! lines from different threads never interleave. Call [`flush_thread`] on
//! a thread before it stops logging for good (a thread's buffer is also
//! flushed when the thread exits).
//!
//! Depends on nothing else in the crate.

use std::cell::RefCell;
use std::io::Write;

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// A buffer this large is written out without waiting for the runtime to
/// go idle.
pub const BATCH_BYTES: usize = 32 * 1024;

thread_local! {
    /// `None` until the thread first flushes: only runtime threads batch.
    static BUFFER: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// A thread's pending lines; written out when the thread exits.
struct Batch(Vec<u8>);

impl Drop for Batch {
    fn drop(&mut self) {
        write_out(&self.0);
    }
}

fn write_out(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // Nowhere to report a failed log write; dropping the lines is all
    // that is left (as tracing's own writers do).
    let _ = std::io::stdout().lock().write_all(bytes);
}

/// Writes out this thread's pending lines, and from now on batches the
/// lines this thread logs. Meant for a runtime's `on_thread_park` hook and
/// for the end of a thread's work.
pub fn flush_thread() {
    BUFFER.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return;
        };
        match slot.as_mut() {
            Some(batch) => {
                write_out(&batch.0);
                batch.0.clear();
            }
            None => *slot = Some(Batch(Vec::with_capacity(BATCH_BYTES))),
        }
    });
}

/// The `MakeWriter` for the log layers: see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchedStdout;

/// Writes one formatted log line.
#[derive(Debug)]
pub struct LineWriter {
    /// Warnings and errors are written out at once, with anything queued
    /// before them on this thread.
    urgent: bool,
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { urgent: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter {
        LineWriter {
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let buffered = BUFFER.with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return false;
            };
            let Some(batch) = slot.as_mut() else {
                return false;
            };
            batch.0.extend_from_slice(line);
            if self.urgent || batch.0.len() >= BATCH_BYTES {
                write_out(&batch.0);
                batch.0.clear();
            }
            true
        });
        if !buffered {
            write_out(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pending() -> usize {
        BUFFER.with(|cell| cell.borrow().as_ref().map_or(0, |b| b.0.len()))
    }

    #[test]
    fn lines_are_written_directly_until_the_thread_flushes_once() {
        std::thread::spawn(|| {
            let mut w = BatchedStdout.make_writer();
            w.write_all(b"direct\n").unwrap();
            assert_eq!(pending(), 0);
            flush_thread();
            w.write_all(b"batched\n").unwrap();
            assert_eq!(pending(), 8);
            flush_thread();
            assert_eq!(pending(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_full_batch_or_an_urgent_line_is_written_at_once() {
        std::thread::spawn(|| {
            flush_thread();
            let mut w = BatchedStdout.make_writer();
            let line = [b'x'; 1000];
            for _ in 0..BATCH_BYTES / 1000 {
                w.write_all(&line).unwrap();
            }
            assert!(pending() > 0 && pending() < BATCH_BYTES);
            w.write_all(&line).unwrap();
            assert_eq!(pending(), 0, "a full batch waits");
            w.write_all(b"info\n").unwrap();
            let mut urgent = LineWriter { urgent: true };
            urgent.write_all(b"warning\n").unwrap();
            assert_eq!(pending(), 0, "a warning waits");
        })
        .join()
        .unwrap();
    }
}
