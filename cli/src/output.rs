//! Standard output for commands whose reader may leave early (`rill consume t | head -3`).
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe is an `io::Error` of kind `BrokenPipe` rather than a
//! silent death. Commands write with `?` (never `println!`, which panics on it), and `main` treats a broken
//! pipe as success: the reader had what it wanted. `consume` catches it earlier, to commit what was printed.

use std::io::{self, BufWriter, StdoutLock, Write};

/// Buffered, locked stdout. Callers flush at the points where a human or a pipe should see the output.
pub fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::with_capacity(64 << 10, io::stdout().lock())
}

/// Whether `err` was caused by writing to a closed stdout.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// Writes `text` and a newline.
pub fn line(out: &mut impl Write, text: impl std::fmt::Display) -> io::Result<()> {
    writeln!(out, "{text}")
}
