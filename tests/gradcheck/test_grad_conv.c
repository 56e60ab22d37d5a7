/* Finite-difference gradient checks of conv1d (stride, padding, dilation, groups, bias) and conv_transpose1d
 * (output_padding, groups, bias). */
#include "vox_test.h"

typedef struct conv_ctx {
  int stride, padding, output_padding, dilation, groups;
  bool transpose, bias;
} conv_ctx;

static vox_status conv_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  conv_ctx *c = ctx;
  vox_tensor *b = c->bias ? in[2] : NULL;
  if (c->transpose)
    return vox_op_conv_transpose1d(in[0], in[1], b, c->stride, c->padding, c->output_padding, c->dilation, c->groups,
                                   out);
  return vox_op_conv1d(in[0], in[1], b, c->stride, c->padding, c->dilation, c->groups, out);
}

Test(grad_conv, conv1d) {
  vox_tensor *in[3] = {vt_randn(VT_SHAPE(2, 4, 11), 1, 1.0f, true), vt_randn(VT_SHAPE(6, 2, 3), 2, 1.0f, true),
                       vt_randn(VT_SHAPE(3, 4, 1), 3, 1.0f, true)};
  vt_gradcheck("conv1d stride 2 padding 1 dilation 2 groups 2", conv_fn,
               &(conv_ctx){.stride = 2, .padding = 1, .dilation = 2, .groups = 2}, 2, in, NULL);
  vt_gradcheck("conv1d 1x1", conv_fn, &(conv_ctx){.stride = 1, .dilation = 1, .groups = 1}, 2,
               (vox_tensor *[]){in[0], in[2]}, NULL);
  for (int i = 0; i < 3; i++) vox_tensor_release(in[i]);
}

Test(grad_conv, conv1d_bias) {
  vox_tensor *in[3] = {vt_randn(VT_SHAPE(2, 4, 7), 1, 1.0f, true), vt_randn(VT_SHAPE(6, 4, 3), 2, 1.0f, true),
                       vt_randn(VT_SHAPE(6), 3, 1.0f, true)};
  vt_gradcheck("conv1d padding 2 with bias", conv_fn,
               &(conv_ctx){.stride = 1, .padding = 2, .dilation = 1, .groups = 1, .bias = true}, 3, in, NULL);
  for (int i = 0; i < 3; i++) vox_tensor_release(in[i]);
}

Test(grad_conv, conv_transpose1d) {
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(2, 4, 5), 1, 1.0f, true), vt_randn(VT_SHAPE(4, 3, 3), 2, 1.0f, true)};
  vt_gradcheck("conv_transpose1d stride 2 padding 1 output_padding 1 groups 2", conv_fn,
               &(conv_ctx){.stride = 2, .padding = 1, .output_padding = 1, .dilation = 1, .groups = 2,
                           .transpose = true},
               2, in, NULL);
  vt_gradcheck("conv_transpose1d stride 3 dilation 2 output_padding 1", conv_fn,
               &(conv_ctx){.stride = 3, .padding = 0, .output_padding = 1, .dilation = 2, .groups = 2,
                           .transpose = true},
               2, in, NULL);
  for (int i = 0; i < 2; i++) vox_tensor_release(in[i]);
}

Test(grad_conv, conv_transpose1d_bias) {
  vox_tensor *in[3] = {vt_randn(VT_SHAPE(2, 4, 5), 1, 1.0f, true), vt_randn(VT_SHAPE(4, 3, 3), 2, 1.0f, true),
                       vt_randn(VT_SHAPE(6), 3, 1.0f, true)};
  vt_gradcheck("conv_transpose1d with bias", conv_fn,
               &(conv_ctx){.stride = 2, .padding = 1, .output_padding = 0, .dilation = 1, .groups = 2,
                           .transpose = true, .bias = true},
               3, in, NULL);
  for (int i = 0; i < 3; i++) vox_tensor_release(in[i]);
}
