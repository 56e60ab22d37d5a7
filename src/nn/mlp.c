/* nn MLP forwards: the SwiGLU gate uses the fused vox_op_swiglu (one pass, one saved pair), GELU the exact or
 * tanh form; intermediate tensors are released as soon as the next op holds what it needs. */
#include "nn/mlp.h"

#include <string.h>

#include "core/ops.h"

vox_status vox_mlp_init(vox_mlp *m, vox_params *reg, const char *name, vox_mlp_kind kind, int d_model, int d_ff,
                        bool bias, vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  memset(m, 0, sizeof *m);
  m->kind = kind;
  if (kind == VOX_MLP_SWIGLU) {
    VOX_TRY(vox_linear_init(&m->gate, reg, vox_params_path(buf, sizeof buf, "%s.gate_proj", name), d_model, d_ff,
                            bias, rng));
    VOX_TRY(vox_linear_init(&m->up, reg, vox_params_path(buf, sizeof buf, "%s.up_proj", name), d_model, d_ff, bias,
                            rng));
    return vox_linear_init(&m->down, reg, vox_params_path(buf, sizeof buf, "%s.down_proj", name), d_ff, d_model,
                           bias, rng);
  }
  VOX_TRY(vox_linear_init(&m->up, reg, vox_params_path(buf, sizeof buf, "%s.fc1", name), d_model, d_ff, bias, rng));
  return vox_linear_init(&m->down, reg, vox_params_path(buf, sizeof buf, "%s.fc2", name), d_ff, d_model, bias, rng);
}

vox_status vox_mlp_forward(const vox_mlp *m, vox_tensor *x, vox_tensor **out) {
  vox_tensor *h = NULL, *u = NULL, *a = NULL;
  vox_status st;
  *out = NULL;
  if (m->kind == VOX_MLP_SWIGLU) {
    VOX_CHECK_GOTO(st, vox_linear_forward(&m->gate, x, &h), done);
    VOX_CHECK_GOTO(st, vox_linear_forward(&m->up, x, &u), done);
    VOX_CHECK_GOTO(st, vox_op_swiglu(h, u, &a), done);
  } else {
    VOX_CHECK_GOTO(st, vox_linear_forward(&m->up, x, &h), done);
    VOX_CHECK_GOTO(st, vox_op_gelu(h, m->kind == VOX_MLP_GELU_TANH, &a), done);
  }
  st = vox_linear_forward(&m->down, a, out);
done:
  vox_tensor_release(h);
  vox_tensor_release(u);
  vox_tensor_release(a);
  return st;
}

vox_status vox_mlp_kind_parse(const char *name, vox_mlp_kind *kind) {
  if (!strcmp(name, "swiglu")) *kind = VOX_MLP_SWIGLU;
  else if (!strcmp(name, "gelu")) *kind = VOX_MLP_GELU;
  else if (!strcmp(name, "gelu_tanh")) *kind = VOX_MLP_GELU_TANH;
  else return vox_errorf(VOX_ERR_INVALID, "mlp: unknown kind '%s' (expected swiglu, gelu or gelu_tanh)", name);
  return VOX_OK;
}
