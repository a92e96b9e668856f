//! Parallel loops on OpenMP's threads (`ffi/parallel.cpp`), for the work a batch does right
//! after FAISS's batched search: the same team that searched runs it, while its threads are
//! awake, instead of a second pool (rayon) competing with libgomp's spinning threads for the
//! cores (measured: `docs/experiments.md`, session 23).

use std::ffi::c_void;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Mutex;

extern "C" {
    /// Calls `task(context, i)` for every `i` in `0..n` on OpenMP's threads.
    fn lwdec_omp_for(
        n: usize,
        task: extern "C" fn(context: *mut c_void, index: usize),
        context: *mut c_void,
    );
}

/// `f(i)` for every `i` in `0..n` on OpenMP's threads, in index order in the result. A panic
/// in `f` is caught on its thread (it must not unwind into C++) and resumed here.
pub(crate) fn map<T: Send, F: Fn(usize) -> T + Sync>(n: usize, f: F) -> Vec<T> {
    struct Job<'a, T, F> {
        f: &'a F,
        slots: &'a [Mutex<Option<T>>],
        panic: &'a Mutex<Option<Box<dyn std::any::Any + Send>>>,
    }
    extern "C" fn run<T: Send, F: Fn(usize) -> T + Sync>(context: *mut c_void, index: usize) {
        // SAFETY: `context` is the `Job` below, alive until `lwdec_omp_for` returns.
        let job = unsafe { &*(context as *const Job<'_, T, F>) };
        match catch_unwind(AssertUnwindSafe(|| (job.f)(index))) {
            Ok(value) => {
                if let Ok(mut slot) = job.slots[index].lock() {
                    *slot = Some(value);
                }
            }
            Err(payload) => {
                if let Ok(mut first) = job.panic.lock() {
                    first.get_or_insert(payload);
                }
            }
        }
    }
    if n <= 1 {
        return (0..n).map(f).collect();
    }
    let slots: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let panic = Mutex::new(None);
    let job = Job {
        f: &f,
        slots: &slots,
        panic: &panic,
    };
    // SAFETY: `run::<T, F>` matches `job`'s type; the loop returns after every call.
    unsafe { lwdec_omp_for(n, run::<T, F>, &job as *const Job<'_, T, F> as *mut c_void) };
    if let Some(payload) = panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        resume_unwind(payload);
    }
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every index ran")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_index_order_and_runs_every_index() {
        let got = map(1000, |i| i * i);
        assert_eq!(got, (0..1000).map(|i| i * i).collect::<Vec<_>>());
        assert!(map(0, |i| i).is_empty());
        assert_eq!(map(1, |i| i + 7), vec![7]);
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| map(64, |i| assert!(i != 40, "row 40")));
        assert!(caught.is_err());
    }
}
