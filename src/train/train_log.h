/* Training output (module prefix vox_train_log_): the progress line (one refreshing line on a terminal, plain lines
 * otherwise) and run_dir/metrics.jsonl, one JSON object per step log, eval, bad step or stage event. Only the
 * process that logs (rank 0) opens one. */
#ifndef VOX_TRAIN_TRAIN_LOG_H
#define VOX_TRAIN_TRAIN_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "train/task.h"

typedef struct vox_train_log vox_train_log;

/* Appends to <run_dir>/metrics.jsonl; progress goes to `out` (a refreshing line when it is a terminal). */
vox_status vox_train_log_open(const char *run_dir, FILE *out, vox_train_log **log);
void vox_train_log_close(vox_train_log *log); /* NULL is fine */

typedef struct vox_train_log_step {
  const char *stage_name;
  int stage;
  int64_t step, steps;  /* completed steps of the stage, and its total */
  double loss, lr, grad_norm;
  double tokens_per_s, samples_per_s, eta_s;
  int64_t tokens, frames, samples; /* of this step */
} vox_train_log_step;

/* Records one step: always refreshes the terminal line; writes a JSONL record (and a plain line when not on a
 * terminal) when `record` is set (every log_every steps). */
void vox_train_log_step_event(vox_train_log *log, const vox_train_log_step *s, bool record);
void vox_train_log_eval(vox_train_log *log, const char *stage_name, int stage, int64_t step,
                        const vox_task_metrics *m);
/* A free-form event ("bad_step", "checkpoint", "stage_start", ...) with a message; printed on its own line. */
void vox_train_log_event(vox_train_log *log, const char *kind, const char *stage_name, int stage, int64_t step,
                         const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
