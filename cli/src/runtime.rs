//! The async runtime each subcommand runs on, with the worker count `--worker-threads` asks for.

use anyhow::Context;

/// A multi-threaded runtime with `worker_threads` workers, 0 meaning [`rill_broker::default_worker_threads`].
///
/// The count is always set in code, so tokio's own `TOKIO_WORKER_THREADS` no longer decides it: the one
/// setting is `--worker-threads` (`RILL_WORKER_THREADS`, TOML `worker_threads`).
pub fn multi_thread(worker_threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = match worker_threads {
        0 => rill_broker::default_worker_threads(),
        n => n,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .with_context(|| format!("cannot start the async runtime with {workers} worker threads"))
}
