/* The autograd engine itself: grad mode, accumulation, hooks, graph freeing and activation checkpointing.
 * Uses a few elementwise ops; the ops' own gradients are checked in tests/gradcheck. */
#include "vox_test.h"

#include <string.h>

static vox_status square_sum(vox_tensor *x, vox_tensor **out) {
  vox_tensor *sq = NULL;
  VOX_TRY(vox_op_mul(x, x, &sq));
  vox_status st = vox_op_sum(sq, 0, NULL, false, out);
  vox_tensor_release(sq);
  return st;
}

Test(autograd, no_grad_records_nothing) {
  vox_tensor *x = vt_randn(VT_SHAPE(4), 1, 1.0f, true), *y = NULL;
  vox_no_grad_begin();
  VT_OK(vox_op_mul(x, x, &y));
  vox_no_grad_end();
  cr_assert(!y->requires_grad && y->node == NULL, "an op under no_grad recorded a node");
  vox_tensor_release(y);
  VT_OK(vox_op_mul(x, x, &y));
  cr_assert(y->requires_grad && y->node != NULL, "an op in grad mode did not record");
  vox_tensor_release(y);
  vox_tensor_release(x);
}

Test(autograd, same_input_twice_and_accumulation) {
  float xv[3] = {1, -2, 3};
  vox_tensor *x = vt_from_f32(VT_SHAPE(3), xv), *loss = NULL;
  x->requires_grad = true;
  VT_OK(square_sum(x, &loss));
  VT_OK(vox_backward(loss, NULL));
  float want[3] = {2, -4, 6};
  vt_assert_close_f32(x->grad, want, 1e-6, 1e-6, "d sum(x*x)/dx");
  vox_tensor_release(loss);
  /* A second pass accumulates into the existing gradient. */
  VT_OK(square_sum(x, &loss));
  VT_OK(vox_backward(loss, NULL));
  float want2[3] = {4, -8, 12};
  vt_assert_close_f32(x->grad, want2, 1e-6, 1e-6, "accumulated gradient");
  vox_tensor_release(loss);
  vox_zero_grad(&x, 1);
  cr_assert(x->grad == NULL);
  vox_tensor_release(x);
}

Test(autograd, second_backward_is_an_error) {
  vox_tensor *x = vt_randn(VT_SHAPE(3), 2, 1.0f, true), *loss = NULL;
  VT_OK(square_sum(x, &loss));
  VT_OK(vox_backward(loss, NULL));
  cr_assert_eq(vox_backward(loss, NULL), VOX_ERR_STATE);
  cr_assert(strstr(vox_last_error(), "already freed") != NULL, "message: %s", vox_last_error());
  vox_tensor_release(loss);
  vox_tensor_release(x);
}

Test(autograd, non_scalar_root_needs_gradient) {
  vox_tensor *x = vt_randn(VT_SHAPE(3), 3, 1.0f, true), *y = NULL;
  VT_OK(vox_op_mul(x, x, &y));
  cr_assert_eq(vox_backward(y, NULL), VOX_ERR_SHAPE);
  vox_tensor_release(y);
  vox_tensor_release(x);
}

static void count_hook(vox_tensor *leaf, void *ctx) { (*(int *)ctx)++; }

Test(autograd, grad_hook_fires_once_after_last_use) {
  vox_tensor *x = vt_randn(VT_SHAPE(5), 4, 1.0f, true);
  int fired = 0;
  x->grad_hook = count_hook;
  x->grad_hook_ctx = &fired;
  /* x feeds three nodes: mul(x, x), then add(that, x). */
  vox_tensor *a = NULL, *b = NULL, *loss = NULL;
  VT_OK(vox_op_mul(x, x, &a));
  VT_OK(vox_op_add(a, x, &b));
  VT_OK(vox_op_sum(b, 0, NULL, false, &loss));
  VT_OK(vox_backward(loss, NULL));
  cr_assert_eq(fired, 1, "hook fired %d times", fired);
  vox_tensor_release(a);
  vox_tensor_release(b);
  vox_tensor_release(loss);
  vox_tensor_release(x);
}

Test(autograd, graph_and_saved_tensors_freed_after_backward) {
  vt_mem_mark mark = vt_mem_now();
  vox_tensor *x = vt_randn(VT_SHAPE(64, 64), 5, 1.0f, true);
  vox_tensor *h = NULL, *t = NULL, *loss = NULL;
  VT_OK(vox_op_tanh(x, &h));
  VT_OK(vox_op_mul(h, x, &t));
  VT_OK(vox_op_sum(t, 0, NULL, false, &loss));
  vox_tensor_release(h); /* the graph alone keeps what backward needs */
  vox_tensor_release(t);
  cr_assert_gt(vox_autograd_live_nodes(), mark.nodes);
  VT_OK(vox_backward(loss, NULL));
  vox_tensor_release(loss);
  cr_assert_eq(vox_autograd_live_nodes(), mark.nodes, "%ld nodes survived backward",
               vox_autograd_live_nodes() - mark.nodes);
  vox_tensor_release(x); /* frees x and its grad */
  vt_assert_mem_back_to(mark, "after backward and release");
}

/* A block with its own parameter: tanh(x * w) * x. */
typedef struct block_ctx {
  vox_tensor *w;
  int calls;
} block_ctx;

static vox_status block(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  block_ctx *c = ctx;
  c->calls++;
  vox_tensor *a = NULL, *b = NULL;
  VOX_TRY(vox_op_mul(in[0], c->w, &a));
  vox_status st = vox_op_tanh(a, &b);
  if (st == VOX_OK) st = vox_op_mul(b, in[0], out);
  vox_tensor_release(a);
  vox_tensor_release(b);
  return st;
}

Test(autograd, checkpoint_matches_plain_backward) {
  vox_tensor *x = vt_randn(VT_SHAPE(4, 6), 6, 1.0f, true);
  block_ctx c = {.w = vt_randn(VT_SHAPE(6), 7, 1.0f, true)};
  vox_tensor *y = NULL, *loss = NULL;
  /* plain */
  VT_OK(block(&c, &x, &y));
  VT_OK(vox_op_sum(y, 0, NULL, false, &loss));
  VT_OK(vox_backward(loss, NULL));
  vox_tensor *gx = vox_tensor_retain(x->grad), *gw = vox_tensor_retain(c.w->grad);
  vox_tensor_drop(&y);
  vox_tensor_drop(&loss);
  vox_zero_grad(&x, 1);
  vox_zero_grad(&c.w, 1);
  /* checkpointed: forward once without recording, again inside backward */
  c.calls = 0;
  VT_OK(vox_checkpoint(block, &c, 1, &x, &y));
  cr_assert_eq(c.calls, 1);
  VT_OK(vox_op_sum(y, 0, NULL, false, &loss));
  VT_OK(vox_backward(loss, NULL));
  cr_assert_eq(c.calls, 2, "the block was not recomputed in backward");
  vt_assert_close(x->grad, gx, 1e-6, 1e-5, "checkpointed dx");
  vt_assert_close(c.w->grad, gw, 1e-6, 1e-5, "checkpointed dw");
  vox_tensor_release(y);
  vox_tensor_release(loss);
  vox_tensor_release(gx);
  vox_tensor_release(gw);
  vox_tensor_release(x);
  vox_tensor_release(c.w);
}
