#include "CKernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* The worker threads behind distill_parallel_run.
 *
 * Why not Dispatch's concurrentPerform: it returns only once every worker it asked for has
 * checked in, even a worker that finds no work left; on a shared machine a woken thread can
 * wait a scheduler slice (milliseconds) for a core, and w1's sub-millisecond products waited
 * with it (2-3x slower than one thread under load). Here the caller takes chunks itself and
 * waits only for chunks that a worker has claimed, so a late worker costs nothing; a worker
 * polls for a few milliseconds after a job before it sleeps.
 *
 * One job runs at a time. A call made while another job is running (from another thread, or
 * from inside a chunk) runs its chunks inline. */

#define MAX_WORKERS 63
/* How long an idle worker polls (yielding its core between polls) before it sleeps: longer
 * than most serial stretches of a training step, so that the next parallel loop finds it
 * awake; a sleeping worker woken on a busy machine arrived after the caller had run most
 * chunks itself (w2: the worker ran 20% of the chunks). */
#define SPIN_NANOSECONDS 3000000

typedef struct {
  /* generation << 32 | next chunk index (CLAIM_CLOSED while a new job is written); a worker
   * claims by compare-and-swap so that it never claims a chunk of a job other than the one
   * whose generation it read. */
  _Atomic uint64_t claim;
  _Atomic long done;
  _Atomic int sleepers;
  /* The job: atomics (read relaxed, after the acquire of `claim`), because a late worker may
   * read them while the caller publishes the next job; its claim then fails. */
  _Atomic long total;
  _Atomic(distill_chunk_function) function;
  _Atomic(void *) context;
  pthread_mutex_t lock; /* held by a caller for the whole job */
  pthread_mutex_t sleep_lock;
  pthread_cond_t wake;
  int workers;
  pthread_once_t once;
} thread_pool;

/* The index of a closed claim word: above any chunk count, so nothing is claimed from it. */
#define CLAIM_CLOSED UINT32_MAX

static thread_pool pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .sleep_lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .once = PTHREAD_ONCE_INIT,
};
static int requested_workers;
static _Thread_local int inside_chunk;

static uint64_t now_nanoseconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Runs chunks of the job of `generation` until none is left. */
static void run_chunks(uint32_t generation) {
  uint64_t state = atomic_load_explicit(&pool.claim, memory_order_acquire);
  for (;;) {
    if ((uint32_t)(state >> 32) != generation) return;
    long index = (long)(uint32_t)state;
    if (index >= atomic_load_explicit(&pool.total, memory_order_relaxed)) return;
    if (!atomic_compare_exchange_weak_explicit(&pool.claim, &state, state + 1, memory_order_acq_rel,
                                               memory_order_acquire))
      continue;
    inside_chunk = 1;
    atomic_load_explicit(&pool.function, memory_order_relaxed)(atomic_load_explicit(&pool.context, memory_order_relaxed), index);
    inside_chunk = 0;
    atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
    state = atomic_load_explicit(&pool.claim, memory_order_acquire);
  }
}

static void *worker_main(void *unused) {
  (void)unused;
  uint32_t seen = 0;
  for (;;) {
    uint64_t start = 0;
    uint32_t generation;
    for (unsigned spins = 0;; spins++) {
      generation = (uint32_t)(atomic_load_explicit(&pool.claim, memory_order_acquire) >> 32);
      if (generation != seen) break;
      /* Poll, then yield between polls: a core shared with other programs goes to them. */
      if (spins < 256) {
        CPU_RELAX();
      } else {
        sched_yield();
      }
      if ((spins & 63) == 63) {
        uint64_t now = now_nanoseconds();
        if (!start) start = now;
        if (now - start < SPIN_NANOSECONDS) continue;
        pthread_mutex_lock(&pool.sleep_lock);
        atomic_fetch_add(&pool.sleepers, 1);
        while ((uint32_t)(atomic_load(&pool.claim) >> 32) == seen) pthread_cond_wait(&pool.wake, &pool.sleep_lock);
        atomic_fetch_sub(&pool.sleepers, 1);
        pthread_mutex_unlock(&pool.sleep_lock);
        start = 0;
      }
    }
    seen = generation;
    run_chunks(generation);
  }
  return NULL;
}

static void start_workers(void) {
  int count = requested_workers > MAX_WORKERS ? MAX_WORKERS : requested_workers;
  for (int i = 0; i < count; i++) {
    pthread_t thread;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attributes, worker_main, NULL) == 0) pool.workers++;
    pthread_attr_destroy(&attributes);
  }
}

void distill_parallel_run(long threads, long chunks, distill_chunk_function function, void *context) {
  if (chunks <= 0) return;
  if (threads <= 1 || chunks == 1 || chunks >= CLAIM_CLOSED || inside_chunk || pthread_mutex_trylock(&pool.lock) != 0) {
    for (long i = 0; i < chunks; i++) function(context, i);
    return;
  }
  requested_workers = (int)threads - 1;
  pthread_once(&pool.once, start_workers);
  if (pool.workers == 0) {
    pthread_mutex_unlock(&pool.lock);
    for (long i = 0; i < chunks; i++) function(context, i);
    return;
  }
  /* Close the last job's claim word before its fields change: a worker still in run_chunks for
   * it may read the new `total` with the old generation, and with the word left at (old, its
   * total) its claim of chunk `total` succeeded and ran a chunk of this job twice, or of the
   * last job after its caller returned (a segmentation fault in a training run). No claim on
   * the closed word succeeds; the acquire orders any claim that did before the new fields. */
  const uint32_t last = (uint32_t)(atomic_load_explicit(&pool.claim, memory_order_relaxed) >> 32);
  atomic_exchange_explicit(&pool.claim, (uint64_t)last << 32 | CLAIM_CLOSED, memory_order_acq_rel);
  atomic_store_explicit(&pool.function, function, memory_order_relaxed);
  atomic_store_explicit(&pool.context, context, memory_order_relaxed);
  atomic_store_explicit(&pool.total, chunks, memory_order_relaxed);
  atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
  const uint32_t generation = last + 1;
  atomic_store(&pool.claim, (uint64_t)generation << 32); /* publishes the fields above */
  if (atomic_load(&pool.sleepers) > 0) {
    pthread_mutex_lock(&pool.sleep_lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.sleep_lock);
  }
  run_chunks(generation);
  /* Every chunk is claimed; wait for those that workers are still running, yielding the core
   * after a while in case the worker is waiting for it. */
  for (unsigned spins = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < chunks; spins++) {
    if (spins < 4096) {
      CPU_RELAX();
    } else {
      sched_yield();
    }
  }
  pthread_mutex_unlock(&pool.lock);
}
