/* ADAMW_MULTI_STEP (the multi-tensor AdamW kernel) against one ADAMW_STEP per tensor on the CPU: bit-identical
 * updates with per-tensor lr and weight decay, and errors for a missing or mismatched operand. */
#include <math.h>
#include <string.h>

#include "core/backend.h"
#include "core/kernel_params.h"
#include "vox_test.h"

static vox_tensor *zeros_like(const vox_tensor *t) {
  vox_tensor *z = NULL;
  VT_OK(vox_tensor_zeros_like(t, &z));
  return z;
}

Test(optim_multi, matches_per_tensor_adamw_bit_for_bit) {
  int64_t sizes[3] = {5, 1000, 33};
  vox_tensor *w[2][3], *m[2][3], *v[2][3], *g[3];
  float lr[3] = {1e-3f, 3e-4f, 1e-2f}, wd[3] = {0.1f, 0.0f, 0.01f};
  for (int i = 0; i < 3; i++) {
    vox_tensor *w0 = vt_randn(1, &sizes[i], 10 + i, 1.0f, false);
    for (int k = 0; k < 2; k++) {
      VT_OK(vox_tensor_clone(w0, &w[k][i]));
      m[k][i] = zeros_like(w0);
      v[k][i] = zeros_like(w0);
    }
    vox_tensor_release(w0);
  }
  for (int step = 1; step <= 3; step++) {
    for (int i = 0; i < 3; i++) g[i] = vt_randn(1, &sizes[i], 100 * step + i, 0.3f, false);
    float bc1 = 1.0f - powf(0.9f, (float)step), bc2 = 1.0f - powf(0.999f, (float)step);
    for (int i = 0; i < 3; i++) {
      vox_adamw_params p = {.lr = lr[i], .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = wd[i],
                            .bias_correction1 = bc1, .bias_correction2 = bc2, .grad_scale = 0.5f};
      vox_kernel_args a = {.n_in = 1, .n_out = 3, .in = {g[i]}, .out = {w[0][i], m[0][i], v[0][i]}, .params = &p};
      VT_OK(vox_kernel_run("adamw", VOX_K_ADAMW_STEP, &a));
    }
    vox_adamw_multi_params mp = {.n = 3, .grads = g, .params = w[1], .exp_avg = m[1], .exp_avg_sq = v[1], .lr = lr,
                                 .weight_decay = wd, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                 .bias_correction1 = bc1, .bias_correction2 = bc2, .grad_scale = 0.5f};
    vox_kernel_args a = {.n_out = 1, .out = {w[1][0]}, .params = &mp};
    VT_OK(vox_kernel_run("adamw multi", VOX_K_ADAMW_MULTI_STEP, &a));
    for (int i = 0; i < 3; i++) vox_tensor_release(g[i]);
  }
  for (int i = 0; i < 3; i++) {
    cr_assert(!memcmp(vox_tensor_data(w[0][i]), vox_tensor_data(w[1][i]), vox_tensor_nbytes(w[0][i])), "param %d", i);
    cr_assert(!memcmp(vox_tensor_data(m[0][i]), vox_tensor_data(m[1][i]), vox_tensor_nbytes(m[0][i])), "m %d", i);
    cr_assert(!memcmp(vox_tensor_data(v[0][i]), vox_tensor_data(v[1][i]), vox_tensor_nbytes(v[0][i])), "v %d", i);
    for (int k = 0; k < 2; k++) vox_tensor_release(w[k][i]), vox_tensor_release(m[k][i]), vox_tensor_release(v[k][i]);
  }
}

Test(optim_multi, mismatched_state_is_an_error) {
  int64_t n = 4, n2 = 5;
  vox_tensor *w = vt_randn(1, &n, 1, 1.0f, false), *g = vt_randn(1, &n, 2, 1.0f, false);
  vox_tensor *m = zeros_like(w), *v = NULL;
  VT_OK(vox_tensor_zeros(VOX_F32, VOX_CPU, 1, &n2, &v));
  float lr = 1e-3f, wd = 0.0f;
  vox_adamw_multi_params mp = {.n = 1, .grads = &g, .params = &w, .exp_avg = &m, .exp_avg_sq = &v, .lr = &lr,
                               .weight_decay = &wd, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                               .bias_correction1 = 0.1f, .bias_correction2 = 0.001f, .grad_scale = 1.0f};
  vox_kernel_args a = {.n_out = 1, .out = {w}, .params = &mp};
  vox_status st = vox_kernel_run("adamw multi", VOX_K_ADAMW_MULTI_STEP, &a);
  cr_assert(st != VOX_OK, "a state tensor of the wrong shape must be refused");
  cr_assert(strstr(vox_last_error(), "tensor 0"), "the message names the tensor: %s", vox_last_error());
  vox_tensor_release(w), vox_tensor_release(g), vox_tensor_release(m), vox_tensor_release(v);
}
