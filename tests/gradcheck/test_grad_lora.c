/* Finite-difference check of the LoRA Linear: gradients of x, A and B through base(x) + x A^T B^T * alpha/r
 * (the base weight frozen, its bias included). */
#include "nn/lora.h"
#include "vox_test.h"

typedef struct lora_case {
  vox_tensor *w, *b;
} lora_case;

static vox_status lora_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  lora_case *c = ctx;
  vox_lora a = {.rank = 3, .alpha = 6.0f, .scale = 2.0f, .A = in[1], .B = in[2]};
  vox_linear l = {.in_features = 5, .out_features = 4, .weight = c->w, .bias = c->b, .lora = &a};
  return vox_linear_forward(&l, in[0], out);
}

Test(gradcheck, lora_linear) {
  lora_case c = {.w = vt_randn(VT_SHAPE(4, 5), 1, 0.5f, false), .b = vt_randn(VT_SHAPE(4), 2, 0.5f, false)};
  vox_tensor *in[3] = {vt_randn(VT_SHAPE(2, 3, 5), 3, 1.0f, true), vt_randn(VT_SHAPE(3, 5), 4, 0.5f, true),
                       vt_randn(VT_SHAPE(4, 3), 5, 0.5f, true)};
  vt_gradcheck("lora linear", lora_fn, &c, 3, in, NULL);
  for (int i = 0; i < 3; i++) vox_tensor_release(in[i]);
  vox_tensor_release(c.w);
  vox_tensor_release(c.b);
}
