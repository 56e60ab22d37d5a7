/* vox_status: the return code of every fallible vox function, and the thread-local error message.
 * A failing function records what went wrong with context (vox_errorf) and returns the code upward. */
#ifndef VOX_CORE_STATUS_H
#define VOX_CORE_STATUS_H

typedef enum vox_status {
  VOX_OK = 0,
  VOX_ERR_INVALID,      /* bad argument or value */
  VOX_ERR_SHAPE,        /* shapes do not agree */
  VOX_ERR_DTYPE,        /* wrong or unsupported dtype */
  VOX_ERR_INDEX,        /* index out of range */
  VOX_ERR_NOMEM,        /* allocation failed */
  VOX_ERR_IO,           /* file could not be read or written */
  VOX_ERR_PARSE,        /* malformed input file */
  VOX_ERR_UNSUPPORTED,  /* valid request this build or backend cannot do */
  VOX_ERR_DEVICE,       /* device runtime error */
  VOX_ERR_NOT_FOUND,    /* missing key, file or name */
  VOX_ERR_STATE,        /* call not valid in the current state */
  VOX_ERR_NUMERIC       /* NaN/Inf where a finite value is required */
} vox_status;

/* Records a formatted message for the current thread and returns `code`, so callers write
 *   return vox_errorf(VOX_ERR_SHAPE, "matmul: %s vs %s", ...); */
vox_status vox_errorf(vox_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends context ("loading foo.h5: ") to the current message; returns `code`. */
vox_status vox_error_context(vox_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *vox_last_error(void);
void vox_error_clear(void);
const char *vox_status_name(vox_status s);

#define VOX_TRY(expr)                          \
  do {                                         \
    vox_status vox_try_status_ = (expr);       \
    if (vox_try_status_ != VOX_OK) return vox_try_status_; \
  } while (0)

/* For functions with cleanup: sets `st` and jumps to `label` on failure. */
#define VOX_CHECK_GOTO(st, expr, label)        \
  do {                                         \
    (st) = (expr);                             \
    if ((st) != VOX_OK) goto label;            \
  } while (0)

#endif
