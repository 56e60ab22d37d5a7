/* Learning-rate schedules as a factor of each group's base lr: linear warmup, then cosine, linear or constant
 * decay to a minimum ratio. Pure functions of the step, so a resumed run gets the same lr. */
#ifndef VOX_OPTIM_SCHEDULE_H
#define VOX_OPTIM_SCHEDULE_H

#include <stdint.h>

#include "core/status.h"

typedef enum vox_schedule_kind { VOX_SCHED_CONSTANT = 0, VOX_SCHED_COSINE, VOX_SCHED_LINEAR } vox_schedule_kind;

typedef struct vox_schedule {
  vox_schedule_kind kind;
  int64_t warmup_steps; /* factor rises linearly to 1 over these steps */
  int64_t total_steps;  /* decay reaches min_lr_ratio here (and stays) */
  double min_lr_ratio;  /* min lr / base lr, in [0, 1] */
} vox_schedule;

/* Factor for the 0-based optimizer step `step` (the one about to run):
 *   step < warmup:  (step + 1) / warmup            (the first step already trains)
 *   afterwards:     p = (step - warmup) / (total - warmup) clamped to [0, 1];
 *                   cosine: min + (1 - min) * (1 + cos(pi p)) / 2;  linear: min + (1 - min) * (1 - p);
 *                   constant: 1. */
double vox_schedule_factor(const vox_schedule *s, int64_t step);
/* Parses "constant" | "cosine" | "linear". */
vox_status vox_schedule_kind_parse(const char *name, vox_schedule_kind *kind);
vox_status vox_schedule_validate(const vox_schedule *s);

#endif
