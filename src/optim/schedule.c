/* Learning-rate schedule factors (warmup + cosine/linear/constant decay). See optim/schedule.h for the
 * exact formulas; tests check them against hand-computed values. */
#include "optim/schedule.h"

#include <math.h>
#include <string.h>

double vox_schedule_factor(const vox_schedule *s, int64_t step) {
  if (step < 0) step = 0;
  if (s->warmup_steps > 0 && step < s->warmup_steps) return (double)(step + 1) / (double)s->warmup_steps;
  if (s->kind == VOX_SCHED_CONSTANT) return 1.0;
  int64_t span = s->total_steps - s->warmup_steps;
  double p = span > 0 ? (double)(step - s->warmup_steps) / (double)span : 1.0;
  if (p < 0) p = 0;
  if (p > 1) p = 1;
  double m = s->min_lr_ratio;
  if (s->kind == VOX_SCHED_COSINE) return m + (1.0 - m) * 0.5 * (1.0 + cos(M_PI * p));
  return m + (1.0 - m) * (1.0 - p);
}

vox_status vox_schedule_kind_parse(const char *name, vox_schedule_kind *kind) {
  if (!strcmp(name, "constant")) *kind = VOX_SCHED_CONSTANT;
  else if (!strcmp(name, "cosine")) *kind = VOX_SCHED_COSINE;
  else if (!strcmp(name, "linear")) *kind = VOX_SCHED_LINEAR;
  else return vox_errorf(VOX_ERR_INVALID, "schedule: unknown kind '%s' (expected constant, cosine or linear)", name);
  return VOX_OK;
}

vox_status vox_schedule_validate(const vox_schedule *s) {
  if (s->warmup_steps < 0 || s->total_steps < 0)
    return vox_errorf(VOX_ERR_INVALID, "schedule: warmup_steps %lld and total_steps %lld must be >= 0",
                      (long long)s->warmup_steps, (long long)s->total_steps);
  if (s->kind != VOX_SCHED_CONSTANT && s->total_steps < s->warmup_steps)
    return vox_errorf(VOX_ERR_INVALID, "schedule: total_steps %lld < warmup_steps %lld",
                      (long long)s->total_steps, (long long)s->warmup_steps);
  if (!(s->min_lr_ratio >= 0 && s->min_lr_ratio <= 1))
    return vox_errorf(VOX_ERR_INVALID, "schedule: min_lr_ratio %g must lie in [0, 1]", s->min_lr_ratio);
  return VOX_OK;
}
