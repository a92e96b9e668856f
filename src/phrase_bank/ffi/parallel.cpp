// A parallel loop on OpenMP's threads, for the work a batch does right after FAISS's batched
// search. FAISS searches a batch on an OpenMP team; when the search returns, libgomp keeps
// the team's threads spinning for a while (its default wait policy), so work handed to
// another pool (rayon) shares the cores with spinning threads. Run on the same team, the work
// starts on threads that are awake and nothing spins against it.
#include <omp.h>

#include <cstddef>

extern "C" {

typedef void (*lwdec_task)(void* context, size_t index);

// Calls task(context, i) for every i in 0..n, on OpenMP's threads, dynamically scheduled.
// `task` must not throw (the Rust side catches panics).
void lwdec_omp_for(size_t n, lwdec_task task, void* context) {
    const long long count = static_cast<long long>(n);
#pragma omp parallel for schedule(dynamic, 1)
    for (long long i = 0; i < count; ++i) {
        task(context, static_cast<size_t>(i));
    }
}

}  // extern "C"
