/* Differentiable elementwise ops: broadcasting binary arithmetic, comparisons, unary math and activations,
 * SwiGLU, where/masked_fill, dropout and the straight-through estimator. Broadcasting expands operands with
 * stride-0 views; backward reduces each gradient to its operand's shape with vox_op_sum_to. */
#include <math.h>
#include <string.h>

#include "core/ops/ops_util.h"

/* ---- helpers ------------------------------------------------------------------------------------------------ */

/* Raw stride-0 view of x at the broadcast shape. */
static vox_status expand_raw(const vox_tensor *x, int ndim, const int64_t *shape, vox_tensor **out) {
  return vox_tensor_view_expand(x, ndim, shape, out);
}

/* g reduced to the shape of input i of node n. */
static vox_status grad_to_input(vox_node *n, int i, vox_tensor *g, vox_tensor **out) {
  return vox_op_sum_to(g, n->inputs[i].ndim, n->inputs[i].shape, out);
}

/* Runs BINARY on a and b broadcast to a common shape; *out has dtype out_dtype. */
static vox_status binary_raw(const char *name, vox_binary_op op, vox_tensor *a, vox_tensor *b, vox_dtype out_dtype,
                             vox_tensor **out) {
  *out = NULL;
  int ndim;
  int64_t shape[VOX_MAX_DIMS];
  VOX_TRY(vox_broadcast_shapes(name, a, b, &ndim, shape));
  vox_tensor *ea = NULL, *eb = NULL;
  vox_status st = expand_raw(a, ndim, shape, &ea);
  if (st == VOX_OK) st = expand_raw(b, ndim, shape, &eb);
  if (st == VOX_OK) st = vox_tensor_empty(out_dtype, a->device, ndim, shape, out);
  if (st == VOX_OK) {
    vox_binary_params p = {.op = op};
    const vox_tensor *in[2] = {ea, eb};
    st = vox_ops_kernel1(name, VOX_K_BINARY, &p, 2, in, *out);
    if (st != VOX_OK) vox_tensor_drop(out);
  }
  vox_tensor_release(ea);
  vox_tensor_release(eb);
  return st;
}

/* Binary op on same-dtype operands; the saved tensors are what backward needs (a in slot 0, b in slot 1). */
static vox_status binary_op(const char *name, vox_binary_op op, vox_tensor *a, vox_tensor *b, bool save_a,
                            bool save_b, vox_backward_fn backward, vox_tensor **out) {
  *out = NULL;
  VOX_TRY(vox_ops_check_pair(name, a, b));
  VOX_TRY(binary_raw(name, op, a, b, a->dtype, out));
  vox_tensor *inputs[2] = {a, b};
  vox_node *node = NULL;
  VOX_TRY(vox_ops_record(name, out, 2, inputs, backward, NULL, 0, &node));
  if (node) {
    vox_node_save(node, save_a ? a : NULL);
    vox_node_save(node, save_b ? b : NULL);
  }
  return VOX_OK;
}

/* ---- add / sub / mul / div ----------------------------------------------------------------------------------- */

static vox_status add_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  if (vox_node_needs_grad(n, 0)) VOX_TRY(grad_to_input(n, 0, g, &gi[0]));
  if (vox_node_needs_grad(n, 1)) VOX_TRY(grad_to_input(n, 1, g, &gi[1]));
  return VOX_OK;
}

static vox_status sub_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  if (vox_node_needs_grad(n, 0)) VOX_TRY(grad_to_input(n, 0, g, &gi[0]));
  if (vox_node_needs_grad(n, 1)) {
    vox_tensor *r = NULL;
    VOX_TRY(grad_to_input(n, 1, g, &r));
    vox_status st = vox_op_neg(r, &gi[1]);
    vox_tensor_release(r);
    return st;
  }
  return VOX_OK;
}

/* d(a*b): g*b to a, g*a to b. */
static vox_status mul_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  for (int i = 0; i < 2; i++) {
    if (!vox_node_needs_grad(n, i)) continue;
    vox_tensor *t = NULL;
    VOX_TRY(vox_op_mul(g, n->saved[1 - i], &t));
    vox_status st = grad_to_input(n, i, t, &gi[i]);
    vox_tensor_release(t);
    VOX_TRY(st);
  }
  return VOX_OK;
}

/* d(a/b): g/b to a, -g*a/b^2 to b. */
static vox_status div_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  vox_tensor *a = n->saved[0], *b = n->saved[1], *t = NULL, *u = NULL, *v = NULL;
  vox_status st = VOX_OK;
  if (vox_node_needs_grad(n, 0)) {
    VOX_TRY(vox_op_div(g, b, &t));
    st = grad_to_input(n, 0, t, &gi[0]);
    vox_tensor_drop(&t);
    VOX_TRY(st);
  }
  if (vox_node_needs_grad(n, 1)) {
    st = vox_op_mul(g, a, &t);
    if (st == VOX_OK) st = vox_op_div(t, b, &u);
    if (st == VOX_OK) st = vox_op_div(u, b, &v);
    vox_tensor_drop(&t);
    vox_tensor_drop(&u);
    if (st == VOX_OK) st = grad_to_input(n, 1, v, &t);
    if (st == VOX_OK) st = vox_op_neg(t, &gi[1]);
    vox_tensor_release(t);
    vox_tensor_release(v);
  }
  return st;
}

vox_status vox_op_add(vox_tensor *a, vox_tensor *b, vox_tensor **out) {
  return binary_op("add", VOX_BIN_ADD, a, b, false, false, add_backward, out);
}
vox_status vox_op_sub(vox_tensor *a, vox_tensor *b, vox_tensor **out) {
  return binary_op("sub", VOX_BIN_SUB, a, b, false, false, sub_backward, out);
}
vox_status vox_op_mul(vox_tensor *a, vox_tensor *b, vox_tensor **out) {
  /* Save b only when a needs a gradient, and vice versa. */
  return binary_op("mul", VOX_BIN_MUL, a, b, b->requires_grad, a->requires_grad, mul_backward, out);
}
vox_status vox_op_div(vox_tensor *a, vox_tensor *b, vox_tensor **out) {
  return binary_op("div", VOX_BIN_DIV, a, b, b->requires_grad, true, div_backward, out);
}

/* ---- maximum / minimum: the gradient goes to the larger (smaller) operand, split in half on ties ------------- */

static vox_status extremum_backward(vox_node *n, vox_tensor *g, vox_tensor **gi, vox_binary_op a_wins) {
  vox_tensor *a = n->saved[0], *b = n->saved[1];
  vox_tensor *win = NULL, *tie = NULL, *half = NULL, *wa = NULL, *wb = NULL, *t = NULL;
  vox_status st = binary_raw("maximum/minimum backward", a_wins, a, b, g->dtype, &win);
  if (st == VOX_OK) st = binary_raw("maximum/minimum backward", VOX_BIN_EQ, a, b, g->dtype, &tie);
  if (st == VOX_OK) st = vox_op_affine(tie, 0.5, 0.0, &half);
  if (st == VOX_OK) st = vox_op_add(win, half, &wa); /* weight of a: 1 where it wins, 1/2 on ties */
  if (st == VOX_OK && vox_node_needs_grad(n, 0)) {
    st = vox_op_mul(g, wa, &t);
    if (st == VOX_OK) st = grad_to_input(n, 0, t, &gi[0]);
    vox_tensor_drop(&t);
  }
  if (st == VOX_OK && vox_node_needs_grad(n, 1)) {
    st = vox_op_affine(wa, -1.0, 1.0, &wb);
    if (st == VOX_OK) st = vox_op_mul(g, wb, &t);
    if (st == VOX_OK) st = grad_to_input(n, 1, t, &gi[1]);
    vox_tensor_drop(&t);
  }
  vox_tensor_release(win);
  vox_tensor_release(tie);
  vox_tensor_release(half);
  vox_tensor_release(wa);
  vox_tensor_release(wb);
  return st;
}

static vox_status maximum_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  return extremum_backward(n, g, gi, VOX_BIN_GT);
}
static vox_status minimum_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  return extremum_backward(n, g, gi, VOX_BIN_LT);
}

vox_status vox_op_maximum(vox_tensor *a, vox_tensor *b, vox_tensor **out) {
  return binary_op("maximum", VOX_BIN_MAX, a, b, true, true, maximum_backward, out);
}
vox_status vox_op_minimum(vox_tensor *a, vox_tensor *b, vox_tensor **out) {
  return binary_op("minimum", VOX_BIN_MIN, a, b, true, true, minimum_backward, out);
}

vox_status vox_op_compare(vox_tensor *a, vox_tensor *b, int binary_op_id, vox_tensor **out) {
  *out = NULL;
  if (binary_op_id < VOX_BIN_EQ || binary_op_id > VOX_BIN_GE)
    return vox_errorf(VOX_ERR_INVALID, "compare: op %d is not a comparison", binary_op_id);
  VOX_TRY(vox_ops_check_pair("compare", a, b));
  return binary_raw("compare", (vox_binary_op)binary_op_id, a, b, VOX_F32, out);
}

/* ---- unary ops ---------------------------------------------------------------------------------------------- */

/* Backward through UNARY_BACKWARD with the forward's params; x is saved unless f' does not depend on it. */
static vox_status unary_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  const vox_unary_params *p = (const vox_unary_params *)n->ctx;
  vox_tensor *x = n->saved[0] ? n->saved[0] : g;
  VOX_TRY(vox_tensor_empty(n->inputs[0].dtype, g->device, g->ndim, g->shape, &gi[0]));
  const vox_tensor *in[2] = {x, g};
  vox_status st = vox_ops_kernel1(n->op, VOX_K_UNARY_BACKWARD, p, 2, in, gi[0]);
  if (st != VOX_OK) vox_tensor_drop(&gi[0]);
  return st;
}

static vox_status unary_op(const char *name, vox_unary_op op, double alpha, double beta, vox_tensor *x,
                           vox_tensor **out) {
  *out = NULL;
  VOX_TRY(vox_ops_check_float(name, x));
  VOX_TRY(vox_tensor_empty(x->dtype, x->device, x->ndim, x->shape, out));
  vox_unary_params p = {.op = op, .alpha = alpha, .beta = beta};
  const vox_tensor *in[1] = {x};
  vox_status st = vox_ops_kernel1(name, VOX_K_UNARY, &p, 1, in, *out);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    return st;
  }
  vox_node *node = NULL;
  VOX_TRY(vox_ops_record(name, out, 1, &x, unary_backward, &p, sizeof p, &node));
  if (node) vox_node_save(node, op == VOX_UN_NEG || op == VOX_UN_AFFINE ? NULL : x);
  return VOX_OK;
}

vox_status vox_op_affine(vox_tensor *x, double alpha, double beta, vox_tensor **out) {
  return unary_op("affine", VOX_UN_AFFINE, alpha, beta, x, out);
}
vox_status vox_op_pow_scalar(vox_tensor *x, double p, vox_tensor **out) {
  return unary_op("pow_scalar", VOX_UN_POW_SCALAR, p, 0.0, x, out);
}
vox_status vox_op_clamp(vox_tensor *x, double lo, double hi, vox_tensor **out) {
  char b1[96];
  if (lo > hi) {
    *out = NULL;
    return vox_errorf(VOX_ERR_INVALID, "clamp: %s with lo %g > hi %g", vox_tensor_describe(x, b1, sizeof b1), lo, hi);
  }
  return unary_op("clamp", VOX_UN_CLAMP, lo, hi, x, out);
}
vox_status vox_op_neg(vox_tensor *x, vox_tensor **out) { return unary_op("neg", VOX_UN_NEG, 0, 0, x, out); }
vox_status vox_op_exp(vox_tensor *x, vox_tensor **out) { return unary_op("exp", VOX_UN_EXP, 0, 0, x, out); }
vox_status vox_op_log(vox_tensor *x, vox_tensor **out) { return unary_op("log", VOX_UN_LOG, 0, 0, x, out); }
vox_status vox_op_sqrt(vox_tensor *x, vox_tensor **out) { return unary_op("sqrt", VOX_UN_SQRT, 0, 0, x, out); }
vox_status vox_op_rsqrt(vox_tensor *x, vox_tensor **out) { return unary_op("rsqrt", VOX_UN_RSQRT, 0, 0, x, out); }
vox_status vox_op_abs(vox_tensor *x, vox_tensor **out) { return unary_op("abs", VOX_UN_ABS, 0, 0, x, out); }
vox_status vox_op_square(vox_tensor *x, vox_tensor **out) { return unary_op("square", VOX_UN_SQUARE, 0, 0, x, out); }
vox_status vox_op_sin(vox_tensor *x, vox_tensor **out) { return unary_op("sin", VOX_UN_SIN, 0, 0, x, out); }
vox_status vox_op_cos(vox_tensor *x, vox_tensor **out) { return unary_op("cos", VOX_UN_COS, 0, 0, x, out); }
vox_status vox_op_tanh(vox_tensor *x, vox_tensor **out) { return unary_op("tanh", VOX_UN_TANH, 0, 0, x, out); }
vox_status vox_op_sigmoid(vox_tensor *x, vox_tensor **out) {
  return unary_op("sigmoid", VOX_UN_SIGMOID, 0, 0, x, out);
}
vox_status vox_op_relu(vox_tensor *x, vox_tensor **out) { return unary_op("relu", VOX_UN_RELU, 0, 0, x, out); }
vox_status vox_op_gelu(vox_tensor *x, bool tanh_approx, vox_tensor **out) {
  return unary_op("gelu", tanh_approx ? VOX_UN_GELU_TANH : VOX_UN_GELU_ERF, 0, 0, x, out);
}
vox_status vox_op_silu(vox_tensor *x, vox_tensor **out) { return unary_op("silu", VOX_UN_SILU, 0, 0, x, out); }

/* ---- swiglu ------------------------------------------------------------------------------------------------- */

static vox_status swiglu_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  vox_tensor *gate = n->saved[0], *up = n->saved[1], *dg = NULL, *du = NULL;
  vox_status st = vox_tensor_empty(gate->dtype, g->device, g->ndim, g->shape, &dg);
  if (st == VOX_OK) st = vox_tensor_empty(up->dtype, g->device, g->ndim, g->shape, &du);
  if (st == VOX_OK) {
    vox_kernel_args a = {.n_in = 3, .n_out = 2, .in = {gate, up, g}, .out = {dg, du}};
    st = vox_kernel_run("swiglu backward", VOX_K_SWIGLU_BACKWARD, &a);
  }
  if (st == VOX_OK && vox_node_needs_grad(n, 0)) gi[0] = vox_tensor_retain(dg);
  if (st == VOX_OK && vox_node_needs_grad(n, 1)) gi[1] = vox_tensor_retain(du);
  vox_tensor_release(dg);
  vox_tensor_release(du);
  return st;
}

vox_status vox_op_swiglu(vox_tensor *gate, vox_tensor *up, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  VOX_TRY(vox_ops_check_pair("swiglu", gate, up));
  VOX_TRY(vox_ops_check_float("swiglu", gate));
  if (!vox_tensor_same_shape(gate, up))
    return vox_errorf(VOX_ERR_SHAPE, "swiglu: gate %s and up %s must have the same shape",
                      vox_tensor_describe(gate, b1, sizeof b1), vox_tensor_describe(up, b2, sizeof b2));
  VOX_TRY(vox_tensor_empty_like(gate, out));
  const vox_tensor *in[2] = {gate, up};
  vox_status st = vox_ops_kernel1("swiglu", VOX_K_SWIGLU, NULL, 2, in, *out);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    return st;
  }
  vox_tensor *inputs[2] = {gate, up};
  vox_node *node = NULL;
  VOX_TRY(vox_ops_record("swiglu", out, 2, inputs, swiglu_backward, NULL, 0, &node));
  if (node) {
    vox_node_save(node, gate);
    vox_node_save(node, up);
  }
  return VOX_OK;
}

/* ---- where / masked_fill ------------------------------------------------------------------------------------ */

/* Runs WHERE with all operands broadcast to (ndim, shape). */
static vox_status where_raw(const char *name, const vox_tensor *c, const vox_tensor *a, const vox_tensor *b,
                            int ndim, const int64_t *shape, vox_tensor **out) {
  *out = NULL;
  vox_tensor *ec = NULL, *ea = NULL, *eb = NULL;
  vox_status st = expand_raw(c, ndim, shape, &ec);
  if (st == VOX_OK) st = expand_raw(a, ndim, shape, &ea);
  if (st == VOX_OK) st = expand_raw(b, ndim, shape, &eb);
  if (st == VOX_OK) st = vox_tensor_empty(a->dtype, a->device, ndim, shape, out);
  if (st == VOX_OK) {
    const vox_tensor *in[3] = {ec, ea, eb};
    st = vox_ops_kernel1(name, VOX_K_WHERE, NULL, 3, in, *out);
    if (st != VOX_OK) vox_tensor_drop(out);
  }
  vox_tensor_release(ec);
  vox_tensor_release(ea);
  vox_tensor_release(eb);
  return st;
}

/* g where cond selects side `a_side`, 0 elsewhere, reduced to input i's shape. */
static vox_status where_grad(vox_node *n, vox_tensor *cond, vox_tensor *g, bool a_side, int i, vox_tensor **out) {
  vox_tensor *zero = NULL, *t = NULL;
  vox_status st = vox_tensor_zeros(g->dtype, g->device, 0, NULL, &zero);
  if (st == VOX_OK) st = where_raw("where backward", cond, a_side ? g : zero, a_side ? zero : g, g->ndim, g->shape, &t);
  if (st == VOX_OK) st = grad_to_input(n, i, t, out);
  vox_tensor_release(zero);
  vox_tensor_release(t);
  return st;
}

static vox_status where_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  if (vox_node_needs_grad(n, 1)) VOX_TRY(where_grad(n, n->saved[0], g, true, 1, &gi[1]));
  if (vox_node_needs_grad(n, 2)) VOX_TRY(where_grad(n, n->saved[0], g, false, 2, &gi[2]));
  gi[0] = NULL; /* the condition gets no gradient */
  return VOX_OK;
}

vox_status vox_op_where(vox_tensor *cond, vox_tensor *a, vox_tensor *b, vox_tensor **out) {
  *out = NULL;
  VOX_TRY(vox_ops_check_pair("where", a, b));
  if (cond->device != a->device) return vox_errorf(VOX_ERR_DEVICE, "where: condition is on another device");
  int nab, n;
  int64_t sab[VOX_MAX_DIMS], shape[VOX_MAX_DIMS];
  VOX_TRY(vox_broadcast_shapes("where", a, b, &nab, sab));
  vox_tensor ab = {.dtype = a->dtype, .ndim = nab};
  memcpy(ab.shape, sab, sizeof sab);
  VOX_TRY(vox_broadcast_shapes("where", cond, &ab, &n, shape));
  VOX_TRY(where_raw("where", cond, a, b, n, shape, out));
  vox_tensor *inputs[3] = {NULL, a, b}; /* cond is not differentiable */
  vox_node *node = NULL;
  VOX_TRY(vox_ops_record("where", out, 3, inputs, where_backward, NULL, 0, &node));
  if (node) vox_node_save(node, cond);
  return VOX_OK;
}

static vox_status masked_fill_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  return where_grad(n, n->saved[0], g, false, 0, &gi[0]);
}

vox_status vox_op_masked_fill(vox_tensor *x, vox_tensor *mask, double value, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  if (mask->device != x->device) return vox_errorf(VOX_ERR_DEVICE, "masked_fill: mask is on another device");
  int n;
  int64_t shape[VOX_MAX_DIMS];
  VOX_TRY(vox_broadcast_shapes("masked_fill", x, mask, &n, shape));
  bool same = n == x->ndim && !memcmp(shape, x->shape, sizeof(int64_t) * (size_t)n);
  if (!same)
    return vox_errorf(VOX_ERR_SHAPE, "masked_fill: mask %s does not broadcast to x %s",
                      vox_tensor_describe(mask, b1, sizeof b1), vox_tensor_describe(x, b2, sizeof b2));
  vox_tensor *v = NULL;
  VOX_TRY(vox_tensor_full(x->dtype, x->device, 0, NULL, value, &v));
  vox_status st = where_raw("masked_fill", mask, v, x, x->ndim, x->shape, out);
  vox_tensor_release(v);
  VOX_TRY(st);
  vox_node *node = NULL;
  VOX_TRY(vox_ops_record("masked_fill", out, 1, &x, masked_fill_backward, NULL, 0, &node));
  if (node) vox_node_save(node, mask);
  return VOX_OK;
}

/* ---- dropout ------------------------------------------------------------------------------------------------ */

static vox_status dropout_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  const vox_dropout_params *p = (const vox_dropout_params *)n->ctx;
  VOX_TRY(vox_tensor_empty(n->inputs[0].dtype, g->device, g->ndim, g->shape, &gi[0]));
  const vox_tensor *in[1] = {g};
  vox_status st = vox_ops_kernel1("dropout backward", VOX_K_DROPOUT, p, 1, in, gi[0]);
  if (st != VOX_OK) vox_tensor_drop(&gi[0]);
  return st;
}

vox_status vox_op_dropout(vox_tensor *x, float p, bool training, vox_rng *rng, vox_tensor **out) {
  char b1[96];
  *out = NULL;
  if (!(p >= 0.0f && p <= 1.0f))
    return vox_errorf(VOX_ERR_INVALID, "dropout: probability %g for %s is outside [0, 1]", (double)p,
                      vox_tensor_describe(x, b1, sizeof b1));
  VOX_TRY(vox_ops_check_float("dropout", x));
  if (p == 0.0f || !training) {
    *out = vox_tensor_retain(x);
    return VOX_OK;
  }
  if (!rng) return vox_errorf(VOX_ERR_INVALID, "dropout: training with p %g needs an rng", (double)p);
  vox_dropout_params prm = {.seed = rng->seed, .offset = vox_rng_take(rng, (uint64_t)vox_tensor_numel(x)), .p = p};
  VOX_TRY(vox_tensor_empty(x->dtype, x->device, x->ndim, x->shape, out));
  const vox_tensor *in[1] = {x};
  vox_status st = vox_ops_kernel1("dropout", VOX_K_DROPOUT, &prm, 1, in, *out);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    return st;
  }
  return vox_ops_record("dropout", out, 1, &x, dropout_backward, &prm, sizeof prm, NULL);
}

/* ---- straight-through --------------------------------------------------------------------------------------- */

static vox_status straight_through_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  gi[0] = vox_tensor_retain(g);
  return VOX_OK;
}

vox_status vox_op_straight_through(vox_tensor *x, vox_tensor *q, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  VOX_TRY(vox_ops_check_pair("straight_through", x, q));
  if (!vox_tensor_same_shape(x, q))
    return vox_errorf(VOX_ERR_SHAPE, "straight_through: x %s and q %s must have the same shape",
                      vox_tensor_describe(x, b1, sizeof b1), vox_tensor_describe(q, b2, sizeof b2));
  /* q's values (a view of them: no copy), x's gradient path. */
  VOX_TRY(vox_tensor_view(q, q->ndim, q->shape, q->strides, q->offset, out));
  return vox_ops_record("straight_through", out, 1, &x, straight_through_backward, NULL, 0, NULL);
}
