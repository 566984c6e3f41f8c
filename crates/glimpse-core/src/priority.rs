//! Compute threads yield to the threads that answer requests.
//!
//! Model answers, image decoding and large request parsing run on threads of their own (tokio's blocking pool,
//! the parsing pool) while tokio's async workers accept connections and answer what needs no compute (`GET
//! models`, health checks, upload chunks, 429s). At equal priority the kernel shares the cores evenly among all
//! of them, so under 200 clients on 2 cores `GET models` waited up to 130 ms behind two toolkit answers and the
//! parsers (scripts/bench/load.py). A compute thread lowers its own priority once (nice +10, Linux only: the nice
//! value is per thread there), which costs the compute nothing when the async workers are idle.

use std::cell::Cell;

use crate::error::GlimpseError;

/// How far below the async workers compute threads run (nice values: 0 normal, 19 lowest).
const COMPUTE_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority by [`COMPUTE_NICE`], once per thread. Unprivileged processes
/// cannot raise a thread's priority again, so only threads that do compute for their whole life (or pools whose
/// every task is compute or blocking I/O) call this.
pub fn lower_current_thread() {
    thread_local!(static LOWERED: Cell<bool> = const { Cell::new(false) });
    LOWERED.with(|lowered| {
        if !lowered.replace(true) {
            lower_nice_by(COMPUTE_NICE);
        }
    });
}

/// Runs `work` on tokio's blocking pool at compute priority. A task that panics answers
/// `Engine("{failed}: …")`.
pub async fn spawn_compute<T: Send + 'static>(
    failed: &str,
    work: impl FnOnce() -> Result<T, GlimpseError> + Send + 'static,
) -> Result<T, GlimpseError> {
    tokio::task::spawn_blocking(move || {
        lower_current_thread();
        work()
    })
    .await
    .map_err(|e| GlimpseError::Engine(format!("{failed}: {e}")))?
}

#[cfg(target_os = "linux")]
fn lower_nice_by(step: i32) {
    // SAFETY: getpriority and setpriority on the calling thread's own id have no memory effects; a failure leaves
    // the priority as it was, which only costs latency.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let nice = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (nice + step).min(19));
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_nice_by(_step: i32) {}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn lowers_only_the_calling_thread() {
        let main_nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let lowered = std::thread::spawn(|| {
            super::lower_current_thread();
            super::lower_current_thread();
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        })
        .join()
        .unwrap();
        let after = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        assert_eq!(lowered, (main_nice + super::COMPUTE_NICE).min(19));
        assert_eq!(after, main_nice);
    }
}
