/* Input/output projectors: construction with defaults, the three input-projector forwards (MinMo transformer +
 * strided conv, Mini-Omni MLP, SLAM frame stacking) with per-sample output lengths, and the output Linear. */
#include "models/projector.h"

#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "models/seq_util.h"

vox_status vox_projector_kind_parse(const char *name, vox_projector_kind *kind) {
  if (!strcmp(name, "minmo")) *kind = VOX_PROJ_MINMO;
  else if (!strcmp(name, "mlp")) *kind = VOX_PROJ_MLP;
  else if (!strcmp(name, "linear")) *kind = VOX_PROJ_LINEAR;
  else return vox_errorf(VOX_ERR_INVALID, "projector: unknown kind '%s' (expected minmo, mlp or linear)", name);
  return VOX_OK;
}

const char *vox_projector_kind_name(vox_projector_kind kind) {
  return kind == VOX_PROJ_MINMO ? "minmo" : kind == VOX_PROJ_MLP ? "mlp" : "linear";
}

vox_status vox_projector_init(vox_projector *p, vox_params *reg, const char *prefix, const vox_projector_config *cfg,
                              vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  memset(p, 0, sizeof *p);
  p->cfg = *cfg;
  vox_projector_config *c = &p->cfg;
  if (c->in_dim <= 0 || c->out_dim <= 0)
    return vox_errorf(VOX_ERR_INVALID, "projector '%s': in_dim %d and out_dim %d must be positive", prefix, c->in_dim,
                      c->out_dim);
  if (c->kind == VOX_PROJ_MINMO) {
    if (c->n_layers == 0) c->n_layers = 2;
    if (c->n_heads == 0) c->n_heads = c->in_dim >= 64 ? c->in_dim / 64 : 1;
    if (c->d_ff == 0) c->d_ff = 4 * c->in_dim;
    if (c->conv_kernel == 0) c->conv_kernel = 3;
    if (c->conv_stride == 0) c->conv_stride = 2;
    if (c->n_layers < 0 || c->conv_kernel < 1 || c->conv_stride < 1)
      return vox_errorf(VOX_ERR_INVALID, "projector '%s': n_layers %d, conv_kernel %d, conv_stride %d are invalid",
                        prefix, c->n_layers, c->conv_kernel, c->conv_stride);
    if (c->n_layers > 0) {
      p->layers = calloc((size_t)c->n_layers, sizeof *p->layers);
      if (!p->layers) return vox_errorf(VOX_ERR_NOMEM, "projector: out of memory");
    }
    vox_block_config bc = {.attn = {.d_model = c->in_dim, .n_heads = c->n_heads, .q_bias = true, .v_bias = true,
                                    .o_bias = true},
                           .mlp_kind = VOX_MLP_GELU, .d_ff = c->d_ff, .mlp_bias = true, .norm_kind = VOX_NORM_LAYER,
                           .norm_eps = 1e-5f, .dropout = c->dropout, .checkpoint = c->checkpoint};
    for (int i = 0; i < c->n_layers; i++)
      VOX_TRY(vox_block_init(&p->layers[i], reg, vox_params_path(buf, sizeof buf, "%slayers.%d", prefix, i), &bc, rng));
    vox_conv1d_config cc = {.in_channels = c->in_dim, .out_channels = c->out_dim, .kernel_size = c->conv_kernel,
                            .stride = c->conv_stride, .padding = c->conv_kernel / 2, .bias = true};
    return vox_conv1d_init(&p->conv, reg, vox_params_path(buf, sizeof buf, "%sconv", prefix), &cc, rng);
  }
  if (c->kind == VOX_PROJ_LINEAR && c->k == 0) c->k = 5;
  if (c->kind != VOX_PROJ_LINEAR) c->k = 1;
  if (c->hidden == 0) c->hidden = c->kind == VOX_PROJ_LINEAR ? 2048 : c->out_dim;
  if (c->k < 1 || c->hidden < 1)
    return vox_errorf(VOX_ERR_INVALID, "projector '%s': k %d and hidden %d must be positive", prefix, c->k, c->hidden);
  VOX_TRY(vox_linear_init(&p->linear1, reg, vox_params_path(buf, sizeof buf, "%slinear1", prefix), c->k * c->in_dim,
                          c->hidden, true, rng));
  return vox_linear_init(&p->linear2, reg, vox_params_path(buf, sizeof buf, "%slinear2", prefix), c->hidden,
                         c->out_dim, true, rng);
}

void vox_projector_release(vox_projector *p) {
  free(p->layers);
  p->layers = NULL;
}

vox_status vox_projector_zero_output(vox_projector *p) {
  bool minmo = p->cfg.kind == VOX_PROJ_MINMO;
  vox_tensor *w = minmo ? p->conv.weight : p->linear2.weight, *b = minmo ? p->conv.bias : p->linear2.bias;
  VOX_TRY(vox_tensor_fill_(w, 0.0));
  return b ? vox_tensor_fill_(b, 0.0) : VOX_OK;
}

int64_t vox_projector_out_len(const vox_projector *p, int64_t len) {
  const vox_projector_config *c = &p->cfg;
  if (len <= 0) return 0;
  if (c->kind == VOX_PROJ_MINMO) {
    int64_t pad = c->conv_kernel / 2, n = len + 2 * pad - c->conv_kernel;
    return n < 0 ? 0 : n / c->conv_stride + 1;
  }
  if (c->kind == VOX_PROJ_LINEAR) return len / c->k;
  return len;
}

static vox_status forward_minmo(vox_projector *p, vox_tensor *x, vox_tensor *lengths, const int32_t *lens,
                                bool training, vox_rng *rng, vox_tensor **out) {
  vox_tensor *h = vox_tensor_retain(x), *mask = NULL, *hz = NULL, *ht = NULL, *c = NULL, *ct = NULL;
  vox_status st = VOX_OK;
  vox_attention_mask am = {.kv_lens = lengths};
  for (int i = 0; i < p->cfg.n_layers; i++) {
    vox_tensor *next = NULL;
    st = vox_block_forward(&p->layers[i], h, NULL, &am, NULL, training, rng, &next);
    vox_tensor_release(h);
    h = next;
    if (st != VOX_OK) goto done;
  }
  /* Zero the padding so the convolution's window at a row's end sees what zero padding alone would give. */
  VOX_CHECK_GOTO(st, vox_seq_pad_mask(lens, x->shape[0], x->shape[1], x->device, &mask), done);
  VOX_CHECK_GOTO(st, vox_op_masked_fill(h, mask, 0.0, &hz), done);
  VOX_CHECK_GOTO(st, vox_op_transpose(hz, 1, 2, &ht), done);
  VOX_CHECK_GOTO(st, vox_conv1d_forward(&p->conv, ht, &c), done);
  VOX_CHECK_GOTO(st, vox_op_transpose(c, 1, 2, &ct), done);
  st = vox_op_contiguous(ct, out);
done:
  vox_tensor_release(h);
  vox_tensor_release(mask);
  vox_tensor_release(hz);
  vox_tensor_release(ht);
  vox_tensor_release(c);
  vox_tensor_release(ct);
  return st;
}

static vox_status forward_mlp(vox_projector *p, vox_tensor *x, vox_tensor **out) {
  const vox_projector_config *c = &p->cfg;
  vox_tensor *xs = NULL, *xr = NULL, *h = NULL, *a = NULL;
  vox_status st;
  int64_t B = x->shape[0], T = x->shape[1], Tk = T / c->k;
  if (c->k > 1) {
    VOX_CHECK_GOTO(st, vox_op_slice(x, 1, 0, Tk * c->k, 1, &xs), done);
    VOX_CHECK_GOTO(st, vox_op_reshape(xs, 3, (int64_t[]){B, Tk, (int64_t)c->k * c->in_dim}, &xr), done);
  } else {
    xr = vox_tensor_retain(x);
  }
  VOX_CHECK_GOTO(st, vox_linear_forward(&p->linear1, xr, &h), done);
  if (c->kind == VOX_PROJ_LINEAR) VOX_CHECK_GOTO(st, vox_op_relu(h, &a), done);
  else VOX_CHECK_GOTO(st, vox_op_gelu(h, false, &a), done);
  st = vox_linear_forward(&p->linear2, a, out);
done:
  vox_tensor_release(xs);
  vox_tensor_release(xr);
  vox_tensor_release(h);
  vox_tensor_release(a);
  return st;
}

vox_status vox_projector_forward(vox_projector *p, vox_tensor *x, vox_tensor *lengths, bool training, vox_rng *rng,
                                 vox_tensor **out, vox_tensor **out_lengths) {
  const vox_projector_config *c = &p->cfg;
  char b1[96];
  *out = NULL;
  if (out_lengths) *out_lengths = NULL;
  if (x->ndim != 3 || x->shape[2] != c->in_dim)
    return vox_errorf(VOX_ERR_SHAPE, "projector (%s): input %s, expected [B, T, %d]", vox_projector_kind_name(c->kind),
                      vox_tensor_describe(x, b1, sizeof b1), c->in_dim);
  int64_t B = x->shape[0], T = x->shape[1];
  int32_t *lens = NULL;
  VOX_TRY(vox_seq_lengths_host(lengths, B, T, "projector", &lens));
  vox_status st;
  if (c->kind == VOX_PROJ_MINMO) st = forward_minmo(p, x, lengths, lens, training, rng, out);
  else st = forward_mlp(p, x, out);
  if (st == VOX_OK && out_lengths) {
    for (int64_t b = 0; b < B; b++) lens[b] = (int32_t)vox_projector_out_len(p, lens[b]);
    st = vox_seq_i32(lens, 1, (int64_t[]){B}, x->device, out_lengths);
    if (st != VOX_OK) vox_tensor_drop(out);
  }
  free(lens);
  if (st != VOX_OK) return vox_error_context(st, "projector (%s): ", vox_projector_kind_name(c->kind));
  return VOX_OK;
}

vox_status vox_output_projector_init(vox_output_projector *p, vox_params *reg, const char *prefix, int in_dim,
                                     int out_dim, vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  return vox_linear_init(&p->linear, reg, vox_params_path(buf, sizeof buf, "%slinear", prefix), in_dim, out_dim, true,
                         rng);
}

vox_status vox_output_projector_forward(const vox_output_projector *p, vox_tensor *x, vox_tensor **out) {
  return vox_linear_forward(&p->linear, x, out);
}
