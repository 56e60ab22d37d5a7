/* Leveled logging to stderr, serialised by a mutex so lines from loader threads do not interleave.
 * The threshold starts from the VOX_LOG environment variable. */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vox_log_level log_level = VOX_LOG_INFO;
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;

__attribute__((constructor)) static void log_init_from_env(void) {
  const char *env = getenv("VOX_LOG");
  if (!env) return;
  if (!strcmp(env, "error")) log_level = VOX_LOG_ERROR;
  else if (!strcmp(env, "warn")) log_level = VOX_LOG_WARN;
  else if (!strcmp(env, "info")) log_level = VOX_LOG_INFO;
  else if (!strcmp(env, "debug")) log_level = VOX_LOG_DEBUG;
}

void vox_log_set_level(vox_log_level level) { log_level = level; }
vox_log_level vox_log_get_level(void) { return log_level; }

void vox_log(vox_log_level level, const char *fmt, ...) {
  if (level > log_level) return;
  static const char *names[] = {"error", "warn", "info", "debug"};
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&log_mutex);
  fprintf(stderr, "vox %s: ", names[level]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  pthread_mutex_unlock(&log_mutex);
  va_end(ap);
}
