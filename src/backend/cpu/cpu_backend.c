/* The CPU backend: 64-byte aligned host allocations with a cache of large blocks, and plain memcpy transfers. Its
 * kernels live in the other files of this folder and register themselves with VOX_REGISTER_KERNEL. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"

/* Why a cache: a training step allocates the same large buffers every step (LM-head logits, the embedding table's
 * gradient, activations), and glibc hands blocks above 32 MB back to the kernel on free, so without reuse every
 * step page-faults through hundreds of MB again (a third of an LM warm-up step on the 2-core VM). Blocks of at
 * least CACHE_MIN bytes are rounded up to a quarter-octave size class, carry their capacity in a 64-byte header,
 * and are parked on free; an allocation takes the smallest parked block that holds it without wasting more than
 * half (row counts change from batch to batch, so exact sizes rarely recur). VOX_CPU_CACHE_MB caps the parked
 * bytes (default 2048; 0 turns the cache off, as memory checkers want). Sanitizer builds never cache, so a use
 * after free is still caught. */
#define CACHE_MIN ((size_t)1 << 20)
#define CACHE_SLOTS 64
#define HEADER ((size_t)64)

static struct {
  pthread_mutex_t lock;
  char *block[CACHE_SLOTS]; /* header addresses, oldest first */
  int n;
  size_t bytes, limit;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t size_class(size_t nbytes) {
  size_t rounded = (nbytes + 63) & ~(size_t)63;
  if (rounded < CACHE_MIN) return rounded;
  int top = 63 - __builtin_clzll((unsigned long long)rounded);
  size_t step = (size_t)1 << (top - 2);
  return (rounded + step - 1) & ~(step - 1);
}

static size_t capacity(const char *block) { return *(const size_t *)block; }

static void unpark(int i) {
  cache.bytes -= capacity(cache.block[i]);
  memmove(&cache.block[i], &cache.block[i + 1], (size_t)(cache.n - i - 1) * sizeof cache.block[0]);
  cache.n--;
}

static vox_status cpu_alloc(size_t nbytes, void **ptr) {
  size_t size = size_class(nbytes);
  *ptr = NULL;
  if (size < CACHE_MIN || cache.limit == 0) {
    *ptr = aligned_alloc(64, size);
    return *ptr ? VOX_OK : vox_errorf(VOX_ERR_NOMEM, "cpu: cannot allocate %zu bytes", nbytes);
  }
  char *block = NULL;
  pthread_mutex_lock(&cache.lock);
  int best = -1;
  for (int i = 0; i < cache.n; i++) {
    size_t cap = capacity(cache.block[i]);
    if (cap >= size && cap <= 2 * size && (best < 0 || cap < capacity(cache.block[best]))) best = i;
  }
  if (best >= 0) {
    block = cache.block[best];
    unpark(best);
  }
  pthread_mutex_unlock(&cache.lock);
  if (!block) {
    block = aligned_alloc(64, HEADER + size);
    if (!block) return vox_errorf(VOX_ERR_NOMEM, "cpu: cannot allocate %zu bytes", nbytes);
    *(size_t *)block = size;
  }
  *ptr = block + HEADER;
  return VOX_OK;
}

static void cpu_free(void *ptr, size_t nbytes) {
  if (!ptr) return;
  if (size_class(nbytes) < CACHE_MIN || cache.limit == 0) {
    free(ptr);
    return;
  }
  char *block = (char *)ptr - HEADER;
  size_t cap = capacity(block);
  if (cap > cache.limit) {
    free(block);
    return;
  }
  char *evicted[CACHE_SLOTS];
  int n_evicted = 0;
  pthread_mutex_lock(&cache.lock);
  /* The oldest parked blocks make room: a size that stopped recurring ages out. */
  while (cache.n > 0 && (cache.n == CACHE_SLOTS || cache.bytes + cap > cache.limit)) {
    evicted[n_evicted++] = cache.block[0];
    unpark(0);
  }
  cache.block[cache.n++] = block;
  cache.bytes += cap;
  pthread_mutex_unlock(&cache.lock);
  for (int i = 0; i < n_evicted; i++) free(evicted[i]);
}

static vox_status cpu_copy(void *dst, const void *src, size_t nbytes) {
  memcpy(dst, src, nbytes);
  return VOX_OK;
}
static vox_status cpu_synchronize(void) { return VOX_OK; }

static size_t cache_limit_from_env(void) {
#if defined(__SANITIZE_ADDRESS__)
  return 0;
#else
  const char *env = getenv("VOX_CPU_CACHE_MB");
  char *end = NULL;
  long long mb = env && *env ? strtoll(env, &end, 10) : 2048;
  if (env && *env && (*end || mb < 0)) mb = 2048; /* not a number: keep the default */
  return (size_t)mb << 20;
#endif
}

__attribute__((constructor(101))) static void cpu_backend_init(void) {
  vox_backend *be = vox_backend_table(VOX_CPU);
  cache.limit = cache_limit_from_env();
  be->available = true;
  be->alloc = cpu_alloc;
  be->free = cpu_free;
  be->copy_to_host = cpu_copy;
  be->copy_from_host = cpu_copy;
  be->synchronize = cpu_synchronize;
}
