/* AdamW and SGD drivers: group/parameter bookkeeping, state allocation, clipping through the REDUCE kernel, and
 * one ADAMW_STEP / SGD_STEP launch per tensor, or one ADAMW_MULTI_STEP for all (the kernels live in each backend). */
#include "optim/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"

vox_optim_config vox_optim_adamw_config(float lr, float weight_decay) {
  return (vox_optim_config){.kind = VOX_OPTIM_ADAMW, .lr = lr, .weight_decay = weight_decay, .beta1 = 0.9f,
                            .beta2 = 0.999f, .eps = 1e-8f};
}

vox_optim_config vox_optim_sgd_config(float lr, float momentum, bool nesterov, float weight_decay) {
  return (vox_optim_config){.kind = VOX_OPTIM_SGD, .lr = lr, .weight_decay = weight_decay, .momentum = momentum,
                            .nesterov = nesterov};
}

static int n_slots(const vox_optim *opt) {
  if (opt->cfg.kind == VOX_OPTIM_ADAMW) return 2;
  return opt->cfg.momentum != 0.0f ? 1 : 0;
}

static const char *slot_name(const vox_optim *opt, int k) {
  if (opt->cfg.kind == VOX_OPTIM_ADAMW) return k == 0 ? "m" : "v";
  return "momentum";
}

vox_status vox_optim_new(const vox_optim_config *cfg, vox_optim **out) {
  *out = NULL;
  if (cfg->kind != VOX_OPTIM_ADAMW && cfg->kind != VOX_OPTIM_SGD)
    return vox_errorf(VOX_ERR_INVALID, "optim_new: unknown optimizer kind %d", (int)cfg->kind);
  if (!(cfg->lr >= 0) || !(cfg->weight_decay >= 0))
    return vox_errorf(VOX_ERR_INVALID, "optim_new: lr %g and weight_decay %g must be >= 0", cfg->lr,
                      cfg->weight_decay);
  if (cfg->kind == VOX_OPTIM_ADAMW &&
      (!(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) || !(cfg->eps > 0)))
    return vox_errorf(VOX_ERR_INVALID, "optim_new: AdamW needs 0 <= betas < 1 and eps > 0 (got %g, %g, %g)",
                      cfg->beta1, cfg->beta2, cfg->eps);
  if (cfg->kind == VOX_OPTIM_SGD && (!(cfg->momentum >= 0) || (cfg->nesterov && cfg->momentum == 0)))
    return vox_errorf(VOX_ERR_INVALID, "optim_new: SGD momentum %g invalid (nesterov needs momentum > 0)",
                      cfg->momentum);
  vox_optim *o = calloc(1, sizeof *o);
  if (!o) return vox_errorf(VOX_ERR_NOMEM, "optim_new: out of memory");
  o->cfg = *cfg;
  o->lr_factor = 1.0f;
  o->grad_scale = 1.0f;
  *out = o;
  return VOX_OK;
}

void vox_optim_free(vox_optim *opt) {
  if (!opt) return;
  for (int i = 0; i < opt->n_entries; i++) {
    vox_tensor_release(opt->entries[i].param);
    vox_tensor_release(opt->entries[i].state[0]);
    vox_tensor_release(opt->entries[i].state[1]);
  }
  free(opt->entries);
  free(opt->groups);
  free(opt);
}

vox_status vox_optim_add_group(vox_optim *opt, const char *name, float lr, float weight_decay, int *group) {
  vox_optim_group *g = realloc(opt->groups, (size_t)(opt->n_groups + 1) * sizeof *g);
  if (!g) return vox_errorf(VOX_ERR_NOMEM, "optim_add_group: out of memory");
  opt->groups = g;
  vox_optim_group *ng = &g[opt->n_groups];
  snprintf(ng->name, sizeof ng->name, "%s", name ? name : "default");
  ng->lr = lr < 0 ? opt->cfg.lr : lr;
  ng->weight_decay = weight_decay < 0 ? opt->cfg.weight_decay : weight_decay;
  if (group) *group = opt->n_groups;
  opt->n_groups++;
  return VOX_OK;
}

bool vox_optim_default_decay(const char *name, const vox_tensor *t) {
  if (t->ndim < 2) return false;
  size_t n = strlen(name);
  if (n >= 5 && !strcmp(name + n - 5, ".bias")) return false;
  if (strstr(name, "norm")) return false;
  return true;
}

static int entry_index(const vox_optim *opt, const vox_tensor *param) {
  for (int i = 0; i < opt->n_entries; i++)
    if (opt->entries[i].param == param) return i;
  return -1;
}

vox_status vox_optim_add_param(vox_optim *opt, int group, const char *name, vox_tensor *param) {
  char b[96];
  if (group < 0 || group >= opt->n_groups)
    return vox_errorf(VOX_ERR_INDEX, "optim_add_param: group %d of %d for '%s'", group, opt->n_groups, name);
  if (param->dtype != VOX_F32 || param->node)
    return vox_errorf(VOX_ERR_DTYPE, "optim_add_param: '%s' is %s; parameters must be f32 leaves (master weights)",
                      name, vox_tensor_describe(param, b, sizeof b));
  if (!vox_tensor_is_contiguous(param))
    return vox_errorf(VOX_ERR_INVALID, "optim_add_param: '%s' must be contiguous", name);
  if (entry_index(opt, param) >= 0)
    return vox_errorf(VOX_ERR_INVALID, "optim_add_param: '%s' is already in the optimizer", name);
  if (opt->n_entries == opt->cap_entries) {
    int cap = opt->cap_entries ? opt->cap_entries * 2 : 32;
    vox_optim_entry *e = realloc(opt->entries, (size_t)cap * sizeof *e);
    if (!e) return vox_errorf(VOX_ERR_NOMEM, "optim_add_param: out of memory");
    opt->entries = e;
    opt->cap_entries = cap;
  }
  vox_optim_entry *e = &opt->entries[opt->n_entries];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  e->group = group;
  e->decay = vox_optim_default_decay(name, param);
  for (int k = 0; k < n_slots(opt); k++) {
    vox_status st = vox_tensor_zeros_like(param, &e->state[k]);
    if (st != VOX_OK) {
      vox_tensor_drop(&e->state[0]);
      return vox_error_context(st, "optim_add_param '%s': ", name);
    }
  }
  e->param = vox_tensor_retain(param);
  opt->n_entries++;
  return VOX_OK;
}

vox_status vox_optim_add_params(vox_optim *opt, int group, const vox_params *reg, const char *glob, int *n) {
  int added = 0;
  for (int i = 0; i < reg->count; i++) {
    const vox_param *p = &reg->items[i];
    if (!p->tensor->requires_grad || (glob && !vox_params_name_matches(glob, p->name))) continue;
    if (entry_index(opt, p->tensor) >= 0) continue;
    VOX_TRY(vox_optim_add_param(opt, group, p->name, p->tensor));
    added++;
  }
  if (n) *n = added;
  return VOX_OK;
}

float vox_optim_group_lr(const vox_optim *opt, int group) { return opt->groups[group].lr * opt->lr_factor; }
void vox_optim_set_lr_factor(vox_optim *opt, float factor) { opt->lr_factor = factor; }
void vox_optim_set_grad_scale(vox_optim *opt, float scale) { opt->grad_scale = scale; }

vox_status vox_optim_grad_norm(vox_optim *opt, double *norm) {
  double total = 0.0;
  *norm = 0.0;
  for (int i = 0; i < opt->n_entries; i++) {
    vox_tensor *g = opt->entries[i].param->grad;
    if (!g) continue;
    int64_t one[VOX_MAX_DIMS];
    for (int d = 0; d < g->ndim; d++) one[d] = 1;
    vox_tensor *s = NULL;
    VOX_TRY(vox_tensor_empty(VOX_F32, g->device, g->ndim, one, &s));
    vox_reduce_params p = {.op = VOX_RED_SUMSQ, .dims = g->ndim >= 32 ? 0xffffffffu : (1u << g->ndim) - 1u};
    vox_kernel_args a = {.n_in = 1, .n_out = 1, .in = {g}, .out = {s}, .params = &p};
    vox_status st = vox_kernel_run("optim grad norm", VOX_K_REDUCE, &a);
    double v = 0;
    if (st == VOX_OK) st = vox_tensor_item(s, &v);
    vox_tensor_release(s);
    if (st != VOX_OK) return st;
    total += v;
  }
  *norm = sqrt(total) * fabs((double)opt->grad_scale);
  if (!isfinite(*norm)) return vox_errorf(VOX_ERR_NUMERIC, "optim grad norm: gradient norm is %g", *norm);
  return VOX_OK;
}

vox_status vox_optim_clip_grad_norm(vox_optim *opt, double max_norm, double *norm) {
  VOX_TRY(vox_optim_grad_norm(opt, norm));
  if (max_norm <= 0 || *norm <= max_norm) return VOX_OK;
  double coef = max_norm / (*norm + 1e-6);
  for (int i = 0; i < opt->n_entries; i++) {
    vox_tensor *g = opt->entries[i].param->grad;
    if (!g) continue;
    /* Elementwise in place: every element reads and writes the same index. */
    vox_unary_params p = {.op = VOX_UN_AFFINE, .alpha = coef, .beta = 0.0};
    vox_kernel_args a = {.n_in = 1, .n_out = 1, .in = {g}, .out = {g}, .params = &p};
    VOX_TRY(vox_kernel_run("optim clip grad norm", VOX_K_UNARY, &a));
  }
  return VOX_OK;
}

/* One fused update of `param` (entry e's parameter or a slice of it) from `g` and the matching state tensors. */
static vox_status update_tensor(vox_optim *opt, const vox_optim_entry *e, vox_tensor *g, vox_tensor *param,
                                vox_tensor *const *state) {
  int64_t t = opt->step + 1;
  const vox_optim_group *grp = &opt->groups[e->group];
  float lr = grp->lr * opt->lr_factor, wd = e->decay ? grp->weight_decay : 0.0f;
  vox_status st;
  if (opt->cfg.kind == VOX_OPTIM_ADAMW) {
    vox_adamw_params p = {.lr = lr, .beta1 = opt->cfg.beta1, .beta2 = opt->cfg.beta2, .eps = opt->cfg.eps,
                          .weight_decay = wd,
                          .bias_correction1 = (float)(1.0 - pow(opt->cfg.beta1, (double)t)),
                          .bias_correction2 = (float)(1.0 - pow(opt->cfg.beta2, (double)t)),
                          .grad_scale = opt->grad_scale};
    vox_kernel_args a = {.n_in = 1, .n_out = 3, .in = {g}, .out = {param, state[0], state[1]}, .params = &p};
    st = vox_kernel_run("adamw step", VOX_K_ADAMW_STEP, &a);
  } else {
    vox_sgd_params p = {.lr = lr, .momentum = opt->cfg.momentum, .weight_decay = wd,
                        .grad_scale = opt->grad_scale, .nesterov = opt->cfg.nesterov};
    vox_kernel_args a = {.n_in = 1, .n_out = n_slots(opt) ? 2 : 1, .in = {g}, .out = {param, n_slots(opt) ? state[0] : NULL},
                         .params = &p};
    st = vox_kernel_run("sgd step", VOX_K_SGD_STEP, &a);
  }
  if (st != VOX_OK) return vox_error_context(st, "optimizer step of '%s': ", e->name);
  return VOX_OK;
}

/* AdamW over every parameter with a gradient in one ADAMW_MULTI_STEP call, when all of them share one device whose
 * backend has that kernel, every gradient matches its parameter and all state is present; *done says whether it
 * ran (otherwise the per-tensor loop runs, with its own checks and messages). */
static vox_status adamw_step_multi(vox_optim *opt, bool *done) {
  *done = false;
  if (opt->cfg.kind != VOX_OPTIM_ADAMW) return VOX_OK;
  int n = 0;
  vox_device dev = VOX_CPU;
  for (int i = 0; i < opt->n_entries; i++) {
    vox_optim_entry *e = &opt->entries[i];
    vox_tensor *g = e->param->grad;
    if (!g) continue;
    if (n > 0 && e->param->device != dev) return VOX_OK;
    dev = e->param->device;
    if (!vox_tensor_same_shape(g, e->param) || g->dtype != VOX_F32 || !vox_tensor_is_contiguous(g) ||
        !e->state[0] || !e->state[1])
      return VOX_OK;
    n++;
  }
  if (n == 0 || !vox_backend_get(dev)->kernels[VOX_K_ADAMW_MULTI_STEP]) return VOX_OK;
  vox_tensor **ts = calloc((size_t)n * 4, sizeof *ts);
  float *lr = calloc((size_t)n * 2, sizeof *lr);
  if (!ts || !lr) {
    free(ts);
    free(lr);
    return vox_errorf(VOX_ERR_NOMEM, "optim step: out of memory for %d tensors", n);
  }
  int k = 0;
  for (int i = 0; i < opt->n_entries; i++) {
    vox_optim_entry *e = &opt->entries[i];
    if (!e->param->grad) continue;
    const vox_optim_group *grp = &opt->groups[e->group];
    ts[k] = e->param->grad;
    ts[n + k] = e->param;
    ts[2 * n + k] = e->state[0];
    ts[3 * n + k] = e->state[1];
    lr[k] = grp->lr * opt->lr_factor;
    lr[n + k] = e->decay ? grp->weight_decay : 0.0f;
    k++;
  }
  int64_t t = opt->step + 1;
  vox_adamw_multi_params p = {.n = n, .grads = ts, .params = ts + n, .exp_avg = ts + 2 * n, .exp_avg_sq = ts + 3 * n,
                              .lr = lr, .weight_decay = lr + n, .beta1 = opt->cfg.beta1, .beta2 = opt->cfg.beta2,
                              .eps = opt->cfg.eps,
                              .bias_correction1 = (float)(1.0 - pow(opt->cfg.beta1, (double)t)),
                              .bias_correction2 = (float)(1.0 - pow(opt->cfg.beta2, (double)t)),
                              .grad_scale = opt->grad_scale};
  vox_kernel_args a = {.n_out = 1, .out = {ts[n]}, .params = &p};
  vox_status st = vox_kernel_run("adamw step", VOX_K_ADAMW_MULTI_STEP, &a);
  free(ts);
  free(lr);
  if (st == VOX_OK) *done = true;
  return st;
}

vox_status vox_optim_step(vox_optim *opt) {
  char b1[96], b2[96];
  bool fused = false;
  VOX_TRY(adamw_step_multi(opt, &fused));
  if (fused) {
    opt->step++;
    return VOX_OK;
  }
  for (int i = 0; i < opt->n_entries; i++) {
    vox_optim_entry *e = &opt->entries[i];
    vox_tensor *g = e->param->grad;
    if (!g) continue;
    if (!vox_tensor_same_shape(g, e->param))
      return vox_errorf(VOX_ERR_SHAPE, "optim step: gradient %s of '%s' does not match the parameter %s",
                        vox_tensor_describe(g, b1, sizeof b1), e->name, vox_tensor_describe(e->param, b2, sizeof b2));
    if (n_slots(opt) > 0 && !e->state[0])
      return vox_errorf(VOX_ERR_STATE, "optim step: the state of '%s' was dropped (sharded optimizer: step through "
                        "dist/zero.h)", e->name);
    VOX_TRY(update_tensor(opt, e, g, e->param, e->state));
  }
  opt->step++;
  return VOX_OK;
}

int vox_optim_slot_count(const vox_optim *opt) { return n_slots(opt); }
const char *vox_optim_slot_name(const vox_optim *opt, int k) { return k >= 0 && k < n_slots(opt) ? slot_name(opt, k) : NULL; }

vox_status vox_optim_step_range(vox_optim *opt, int entry, int64_t start, int64_t count, vox_tensor *grad,
                                vox_tensor *const *state) {
  char b[96];
  if (entry < 0 || entry >= opt->n_entries)
    return vox_errorf(VOX_ERR_INDEX, "optim step_range: entry %d of %d", entry, opt->n_entries);
  vox_optim_entry *e = &opt->entries[entry];
  int64_t numel = vox_tensor_numel(e->param);
  if (start < 0 || count < 0 || start + count > numel)
    return vox_errorf(VOX_ERR_INDEX, "optim step_range: [%lld, %lld) outside the %lld elements of '%s'",
                      (long long)start, (long long)(start + count), (long long)numel, e->name);
  if (vox_tensor_numel(grad) != count)
    return vox_errorf(VOX_ERR_SHAPE, "optim step_range: gradient %s for %lld elements of '%s'",
                      vox_tensor_describe(grad, b, sizeof b), (long long)count, e->name);
  for (int k = 0; k < n_slots(opt); k++)
    if (!state[k] || vox_tensor_numel(state[k]) != count)
      return vox_errorf(VOX_ERR_SHAPE, "optim step_range: state slot '%s' of '%s' must have %lld elements",
                        slot_name(opt, k), e->name, (long long)count);
  if (count == 0) return VOX_OK;
  int64_t shape[1] = {count}, stride[1] = {1};
  vox_tensor *slice = NULL;
  VOX_TRY(vox_tensor_view(e->param, 1, shape, stride, e->param->offset + start, &slice));
  vox_status st = update_tensor(opt, e, grad, slice, state);
  vox_tensor_release(slice);
  return st;
}

void vox_optim_drop_state(vox_optim *opt) {
  for (int i = 0; i < opt->n_entries; i++)
    for (int k = 0; k < 2; k++) vox_tensor_drop(&opt->entries[i].state[k]);
}

void vox_optim_zero_grad(vox_optim *opt) {
  for (int i = 0; i < opt->n_entries; i++) vox_tensor_drop(&opt->entries[i].param->grad);
}

int vox_optim_state_count(const vox_optim *opt) { return opt->n_entries * n_slots(opt); }

vox_status vox_optim_state_at(const vox_optim *opt, int i, const char **param_name, const char **slot,
                              vox_tensor **t) {
  int k = n_slots(opt);
  if (i < 0 || i >= opt->n_entries * k)
    return vox_errorf(VOX_ERR_INDEX, "optim_state_at: index %d of %d", i, opt->n_entries * k);
  const vox_optim_entry *e = &opt->entries[i / k];
  if (param_name) *param_name = e->name;
  if (slot) *slot = slot_name(opt, i % k);
  if (t) *t = e->state[i % k];
  return VOX_OK;
}

vox_status vox_optim_state_find(const vox_optim *opt, const char *param_name, const char *slot, vox_tensor **t) {
  *t = NULL;
  for (int i = 0; i < opt->n_entries; i++) {
    if (strcmp(opt->entries[i].name, param_name)) continue;
    for (int k = 0; k < n_slots(opt); k++)
      if (!strcmp(slot_name(opt, k), slot)) {
        *t = opt->entries[i].state[k];
        return VOX_OK;
      }
    return vox_errorf(VOX_ERR_NOT_FOUND, "optim_state_find: '%s' has no state slot '%s'", param_name, slot);
  }
  return vox_errorf(VOX_ERR_NOT_FOUND, "optim_state_find: no parameter '%s' in the optimizer", param_name);
}
