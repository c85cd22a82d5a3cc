//! The storage's own tokio runtime, and how a synchronous caller waits on it.
//!
//! `CheckpointStorage` is a synchronous trait, called from task threads, from the RocksDB
//! backend's transfer pool (itself a tokio runtime's blocking threads) and from inside an
//! embedding async stream processor. So a call never uses `Runtime::block_on` (which panics
//! inside a runtime): it spawns its future on this runtime and waits for the result on a plain
//! channel, which blocks only the calling thread, wherever it is.

use keyedstate_core::{Error, ErrorKind, Result};
use std::future::Future;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, sync_channel};
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("keyedstate-object-store")
            .enable_all()
            .build()
            .expect("the object-store runtime starts")
    })
}

/// Starts `future` on the runtime; its output arrives on the returned channel.
pub(crate) fn start<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Receiver<T> {
    let (tx, rx) = sync_channel(1);
    runtime().spawn(async move {
        // The receiver may be gone (a writer dropped mid-upload): nothing waits for the output.
        let _ = tx.send(future.await);
    });
    rx
}

/// Waits for what [`start`] sends; a task that panicked sent nothing, and is an `Io` error.
pub(crate) fn wait<T>(output: &Receiver<T>) -> Result<T> {
    output.recv().map_err(|_| {
        Error::new(
            ErrorKind::Io,
            "an object-store request ended without a result (its task panicked)",
        )
    })
}

/// Runs `future` on the runtime and waits for its output.
pub(crate) fn run<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T> {
    wait(&start(future))
}
