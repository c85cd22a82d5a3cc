//! File transfers between an instance's directory and checkpoint storage, on a process-wide
//! tokio runtime with bounded concurrency (blocking file I/O runs on its blocking pool).

use keyedstate_core::{Error, Result};
use std::sync::{Arc, OnceLock};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

/// Default number of files transferred at once per snapshot or restore.
pub const DEFAULT_TRANSFER_CONCURRENCY: usize = 4;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("keyedstate-transfer")
            .enable_all()
            .build()
            .expect("the transfer runtime starts")
    })
}

/// A transfer: blocking work returning one result.
pub(crate) type Job<T> = Box<dyn FnOnce() -> Result<T> + Send>;

/// Runs `jobs`, at most `concurrency` at once, and returns their results in order; the first
/// error, if any, after every job has finished (so none is left writing). Blocks the calling
/// thread, which may be inside a tokio runtime of its own (an async stream processor): the
/// transfers then wait on a thread of their own, as tokio does not let a runtime's thread block
/// on another runtime.
pub(crate) fn run_bounded<T: Send + 'static>(
    jobs: Vec<Job<T>>,
    concurrency: usize,
) -> Result<Vec<T>> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return std::thread::scope(|scope| {
            scope
                .spawn(|| transfer(jobs, concurrency))
                .join()
                .unwrap_or_else(|_| Err(Error::invalid_argument("a transfer panicked")))
        });
    }
    transfer(jobs, concurrency)
}

fn transfer<T: Send + 'static>(jobs: Vec<Job<T>>, concurrency: usize) -> Result<Vec<T>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    runtime().block_on(async move {
        let mut handles = Vec::with_capacity(jobs.len());
        for job in jobs {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            handles.push(tokio::task::spawn_blocking(move || {
                let _permit = permit;
                job()
            }));
        }
        let mut results = Vec::with_capacity(handles.len());
        let mut first_error = None;
        for handle in handles {
            match handle.await {
                Ok(Ok(value)) => results.push(value),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(panic) => {
                    first_error.get_or_insert(Error::invalid_argument(format!(
                        "a transfer panicked: {panic}"
                    )));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(results),
        }
    })
}
