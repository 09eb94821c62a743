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
 * What bounds it is that a miss, once more than POOL_FLOOR bytes are cached, first releases
 * at least as many cached bytes of other sizes as it maps. Live plus cached memory thus stays
 * within about POOL_FLOOR of the most the program has held live at once, and a program whose
 * sizes change (training, then sampling) trades its old sizes for the new ones instead of
 * keeping both.
 *
 * Large programs get a larger floor: half the most they have held live. A training step of
 * the 35.7 M-parameter UNet (w5, about 1 GiB live) with the fixed 128 MiB missed often enough
 * that a fifth of its time went to the kernel mapping, faulting in and unmapping buffers
 * (16% more CPU time per step at one thread than with 512 MiB, for 27 MiB more peak RSS). */

#define POOL_BINS 1024            /* open-addressed table of sizes; a power of two */
/* Cached bytes a miss may leave in place. w2 needs about 55 MiB more than its peak live set
 * for every size to find a buffer; at 64 MiB misses still evicted sizes needed later. */
#define POOL_FLOOR (128u << 20)
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
  const size_t floor = peak_live_bytes / 2 > POOL_FLOOR ? peak_live_bytes / 2 : POOL_FLOOR;
  if (cached_bytes > floor) count = take_victims(bytes, victims, 64);
  pthread_mutex_unlock(&pool_lock);
  for (size_t i = 0; i < count; i++) system_free(victims[i].buffer, victims[i].bytes);
  void *p = system_alloc(bytes);
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
