/* Thread-local error messages behind vox_status codes.
 * Messages are bounded; context is prepended so the outermost caller's view reads first. */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define VOX_ERROR_CAP 2048
static _Thread_local char error_message[VOX_ERROR_CAP];

vox_status vox_errorf(vox_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_message, sizeof error_message, fmt, ap);
  va_end(ap);
  return code;
}

vox_status vox_error_context(vox_status code, const char *fmt, ...) {
  char prefix[VOX_ERROR_CAP], old[VOX_ERROR_CAP];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, error_message, sizeof old);
  size_t n = strlen(prefix);
  if (n >= sizeof error_message) n = sizeof error_message - 1;
  memcpy(error_message, prefix, n);
  size_t rest = strnlen(old, sizeof old - 1);
  if (rest > sizeof error_message - 1 - n) rest = sizeof error_message - 1 - n;
  memcpy(error_message + n, old, rest);
  error_message[n + rest] = '\0';
  return code;
}

const char *vox_last_error(void) { return error_message; }
void vox_error_clear(void) { error_message[0] = '\0'; }

const char *vox_status_name(vox_status s) {
  switch (s) {
    case VOX_OK: return "ok";
    case VOX_ERR_INVALID: return "invalid argument";
    case VOX_ERR_SHAPE: return "shape mismatch";
    case VOX_ERR_DTYPE: return "dtype error";
    case VOX_ERR_INDEX: return "index out of range";
    case VOX_ERR_NOMEM: return "out of memory";
    case VOX_ERR_IO: return "i/o error";
    case VOX_ERR_PARSE: return "parse error";
    case VOX_ERR_UNSUPPORTED: return "unsupported";
    case VOX_ERR_DEVICE: return "device error";
    case VOX_ERR_NOT_FOUND: return "not found";
    case VOX_ERR_STATE: return "invalid state";
    case VOX_ERR_NUMERIC: return "numeric error";
  }
  return "unknown";
}
