//! Standard output for commands whose reader may leave early (`rill consume t | head -3`).
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe is an `io::Error` of kind `BrokenPipe` rather than a
//! silent death. Commands write with `?` (never `println!`, which panics on it), and `main` treats a broken
//! pipe as success: the reader had what it wanted. `consume` catches it earlier, to commit what was printed.

use std::io::{self, BufWriter, StdoutLock, Write};

use tokio::sync::oneshot;

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

/// What the stdout thread hands back: the buffer (emptied, for reuse) and whether writing it succeeded.
type Written = (Vec<u8>, io::Result<()>);

/// Stdout written and flushed by a thread of its own, for a command that must stay responsive while its reader
/// is not reading (`rill consume --follow | slow-reader`, or a reader that stopped): a write that blocks on a
/// full pipe blocks that thread, not the command, which still sees SIGINT and SIGTERM and exits. The thread
/// holds the stdout lock for its life; the process's exit ends it, even mid-write.
pub struct StdoutThread {
    buffers: std::sync::mpsc::Sender<(Vec<u8>, oneshot::Sender<Written>)>,
}

impl StdoutThread {
    pub fn start() -> io::Result<StdoutThread> {
        let (buffers, incoming) = std::sync::mpsc::channel::<(Vec<u8>, oneshot::Sender<Written>)>();
        std::thread::Builder::new().name("stdout-writer".into()).spawn(move || {
            let mut out = io::stdout().lock();
            for (mut buffer, done) in incoming {
                let written = out.write_all(&buffer).and_then(|()| out.flush());
                buffer.clear();
                let _ = done.send((buffer, written));
            }
        })?;
        Ok(StdoutThread { buffers })
    }

    /// Writes and flushes `buffer`, and hands it back emptied. Cancel-safe in the sense that matters: dropping
    /// the future leaves the write to the thread, and the bytes count as not written.
    pub async fn write_all(&self, buffer: Vec<u8>) -> Written {
        let (done, written) = oneshot::channel();
        if self.buffers.send((buffer, done)).is_err() {
            return (Vec::new(), Err(io::Error::other("the stdout thread ended")));
        }
        written.await.unwrap_or_else(|_| (Vec::new(), Err(io::Error::other("the stdout thread ended"))))
    }
}
