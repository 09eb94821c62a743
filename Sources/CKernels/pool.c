#include "CKernels.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/* A cache of freed tensor buffers keyed by exact byte size.
 *
 * A training step allocates the same sequence of buffer sizes every step. Through glibc those
 * of 128 KiB and more are mmapped and unmapped each time, so every step page-faults its
 * activations in afresh (and the rest churns glibc's bins). Keeping a few freed buffers per
 * size lets the next step reuse them: steady-state training then touches memory that is
 * already mapped. The cache is bounded in total bytes so that idle buffers add little to the
 * peak resident size; a buffer that does not fit is returned to the system. */

#define POOL_BINS 1024          /* open-addressed table of sizes; a power of two */
#define POOL_PER_BIN 16         /* most buffers kept per size */
#define POOL_LIMIT (48u << 20)  /* most bytes kept in all */
#define POOL_LARGEST (16u << 20) /* larger buffers are never kept */

typedef struct {
  size_t bytes; /* 0: unused */
  int count;
  void *buffers[POOL_PER_BIN];
} pool_bin;

static pool_bin bins[POOL_BINS];
static size_t cached_bytes;
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

void *distill_buffer_alloc(size_t bytes) {
  bytes = round_bytes(bytes);
  if (bytes <= POOL_LARGEST) {
    pthread_mutex_lock(&pool_lock);
    pool_bin *bin = find_bin(bytes, 0);
    if (bin && bin->count > 0) {
      void *p = bin->buffers[--bin->count];
      cached_bytes -= bytes;
      pthread_mutex_unlock(&pool_lock);
      return p;
    }
    pthread_mutex_unlock(&pool_lock);
  }
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes) != 0) return NULL;
  return p;
}

void distill_buffer_free(void *buffer, size_t bytes) {
  if (!buffer) return;
  bytes = round_bytes(bytes);
  if (bytes <= POOL_LARGEST) {
    pthread_mutex_lock(&pool_lock);
    if (cached_bytes + bytes <= POOL_LIMIT) {
      pool_bin *bin = find_bin(bytes, 1);
      if (bin && bin->count < POOL_PER_BIN) {
        bin->buffers[bin->count++] = buffer;
        cached_bytes += bytes;
        pthread_mutex_unlock(&pool_lock);
        return;
      }
    }
    pthread_mutex_unlock(&pool_lock);
  }
  free(buffer);
}
