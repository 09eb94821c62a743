#define _GNU_SOURCE
#include "CKernels.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

/* A cache of freed tensor buffers keyed by exact byte size.
 *
 * A training step allocates the same sequence of buffer sizes every step. Through glibc,
 * buffers of 128 KiB and more were mmapped and page-faulted in afresh every step, or, once
 * glibc raised its mmap threshold, carved from a heap that fragments and keeps its peak (w2:
 * 200 MiB of live tensors, 330 MiB resident). Here large buffers are mapped directly and kept
 * on a free list per size when released, so the next step reuses memory that is already
 * mapped and resident memory follows what the program actually holds.
 *
 * The cache has no fixed size: it holds what the program has released and may ask for again.
 * What bounds it is that a miss that would take live plus cached bytes more than POOL_SLACK
 * above the most the program has ever held live first releases cached buffers of other
 * sizes: the one closest in size is remapped (mremap) to serve the request, so its pages
 * stay resident and are not faulted in again, and others go back to the system until the
 * total is within bounds. Resident memory thus stays within POOL_SLACK of the peak live set,
 * and a program whose sizes change (training, then sampling) trades its old sizes for the
 * new ones instead of keeping both.
 *
 * Until 2026-12-07 the bound was on cached bytes alone (128 MiB, or half the peak live set
 * for large programs), which let a training step of the 35.7 M-parameter UNet (w5) keep
 * some 180 MiB of cached buffers above its live set; with activation recomputation that was
 * a fifth of its peak RSS. The bound on the total, with remapped victims, keeps w5's page
 * faults near the old policy's and w2's below them (docs/benchmarks.md, 2026-12-07). */

#define POOL_BINS 1024            /* open-addressed table of sizes; a power of two */
/* How far live plus cached bytes may exceed the most ever held live before a miss evicts. */
#define POOL_SLACK (48u << 20)
#define POOL_DIRECT (128u << 10)  /* buffers this large are mapped directly */

typedef struct pool_bin {
  size_t bytes; /* 0: unused */
  void *head;   /* free buffers of this size, linked through their first word */
} pool_bin;

static pool_bin bins[POOL_BINS];
static size_t cached_bytes;
static size_t live_bytes, peak_live_bytes; /* handed out and not yet freed; its maximum */
static size_t evict_cursor;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t round_bytes(size_t bytes) { return ((bytes ? bytes : 1) + 63) & ~(size_t)63; }

/* The bin for `bytes`, claiming an unused one if `claim`; NULL when absent (or the table is
 * full). Bins are never released, so a probe ends at the first unused bin. */
static pool_bin *find_bin(size_t bytes, int claim) {
  size_t h = (size_t)((bytes >> 6) * 0x9E3779B97F4A7C15ull) >> 54; /* top 10 bits */
  for (size_t i = 0; i < POOL_BINS; i++) {
    pool_bin *bin = &bins[(h + i) & (POOL_BINS - 1)];
    if (bin->bytes == bytes) return bin;
    if (bin->bytes == 0) {
      if (!claim) return NULL;
      bin->bytes = bytes;
      return bin;
    }
  }
  return NULL;
}

static void *system_alloc(size_t bytes) {
  if (bytes >= POOL_DIRECT) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
  }
  void *p = NULL;
  return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
}

static void system_free(void *buffer, size_t bytes) {
  if (bytes >= POOL_DIRECT) {
    munmap(buffer, bytes);
  } else {
    free(buffer);
  }
}

typedef struct victim {
  void *buffer;
  size_t bytes;
} victim;

/* Unlinks cached buffers, round-robin over the sizes, until `wanted` bytes are taken (or
 * `capacity` buffers, or all); returns how many it stored in `out`. Called with the lock
 * held; the caller returns them to the system after unlocking. */
static size_t take_victims(size_t wanted, victim *out, size_t capacity) {
  size_t taken = 0, count = 0;
  for (size_t scanned = 0; scanned < POOL_BINS && taken < wanted && count < capacity; scanned++) {
    pool_bin *bin = &bins[evict_cursor];
    while (bin->head && taken < wanted && count < capacity) {
      void *buffer = bin->head;
      bin->head = *(void **)buffer;
      out[count++] = (victim){buffer, bin->bytes};
      taken += bin->bytes;
      cached_bytes -= bin->bytes;
    }
    if (taken < wanted) evict_cursor = (evict_cursor + 1) & (POOL_BINS - 1);
  }
  return count;
}

/* The bin of cached mapped buffers whose size is the smallest at least `bytes`, else the
 * largest; NULL when none is cached. Called with the lock held, on misses only. */
static pool_bin *closest_bin(size_t bytes) {
  pool_bin *best = NULL;
  for (size_t i = 0; i < POOL_BINS; i++) {
    pool_bin *bin = &bins[i];
    if (!bin->head || bin->bytes < POOL_DIRECT) continue;
    if (!best) {
      best = bin;
      continue;
    }
    const int fits = bin->bytes >= bytes, best_fits = best->bytes >= bytes;
    if (fits ? !best_fits || bin->bytes < best->bytes : !best_fits && bin->bytes > best->bytes) best = bin;
  }
  return best;
}

void *distill_buffer_alloc(size_t bytes) {
  bytes = round_bytes(bytes);
  victim victims[64];
  size_t count = 0;
  pthread_mutex_lock(&pool_lock);
  pool_bin *bin = find_bin(bytes, 0);
  live_bytes += bytes;
  if (live_bytes > peak_live_bytes) peak_live_bytes = live_bytes;
  if (bin && bin->head) {
    void *p = bin->head;
    bin->head = *(void **)p;
    cached_bytes -= bytes;
    pthread_mutex_unlock(&pool_lock);
    return p;
  }
  /* Over budget: the cached buffer closest in size to `bytes` (remapped below to serve it,
   * so its pages stay resident), then others round-robin until live plus cached is back
   * within POOL_SLACK of the peak. */
  if (live_bytes + cached_bytes > peak_live_bytes + POOL_SLACK) {
    size_t over = live_bytes + cached_bytes - peak_live_bytes - POOL_SLACK;
    pool_bin *best = bytes >= POOL_DIRECT ? closest_bin(bytes) : NULL;
    if (best) {
      void *buffer = best->head;
      best->head = *(void **)buffer;
      victims[count++] = (victim){buffer, best->bytes};
      cached_bytes -= best->bytes;
      over = over > best->bytes ? over - best->bytes : 0;
    }
    if (over) count += take_victims(over, victims + count, 64 - count);
  }
  pthread_mutex_unlock(&pool_lock);
  void *p = NULL;
  for (size_t i = 0; i < count; i++) {
    if (!p && bytes >= POOL_DIRECT && victims[i].bytes >= POOL_DIRECT) {
      void *moved = mremap(victims[i].buffer, victims[i].bytes, bytes, MREMAP_MAYMOVE);
      if (moved != MAP_FAILED) {
        p = moved;
        continue;
      }
    }
    system_free(victims[i].buffer, victims[i].bytes);
  }
  if (!p) p = system_alloc(bytes);
  if (!p) {
    pthread_mutex_lock(&pool_lock);
    live_bytes -= bytes;
    pthread_mutex_unlock(&pool_lock);
  }
  return p;
}

void distill_buffer_free(void *buffer, size_t bytes) {
  if (!buffer) return;
  bytes = round_bytes(bytes);
  pthread_mutex_lock(&pool_lock);
  live_bytes -= bytes;
  pool_bin *bin = find_bin(bytes, 1);
  if (bin) {
    *(void **)buffer = bin->head;
    bin->head = buffer;
    cached_bytes += bytes;
    pthread_mutex_unlock(&pool_lock);
    return;
  }
  pthread_mutex_unlock(&pool_lock);
  system_free(buffer, bytes);
}

size_t distill_buffer_peak_live(void) {
  pthread_mutex_lock(&pool_lock);
  size_t bytes = peak_live_bytes;
  pthread_mutex_unlock(&pool_lock);
  return bytes;
}

size_t distill_buffer_cached(void) {
  pthread_mutex_lock(&pool_lock);
  size_t bytes = cached_bytes;
  pthread_mutex_unlock(&pool_lock);
  return bytes;
}
