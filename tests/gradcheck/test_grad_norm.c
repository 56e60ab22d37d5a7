/* Finite-difference gradient checks of rms_norm and layer_norm (with and without weight/bias). */
#include "vox_test.h"

static vox_status rms_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_rms_norm(in[0], ctx ? in[1] : NULL, 1e-5f, out);
}
static vox_status ln_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_layer_norm(in[0], ctx ? in[1] : NULL, ctx ? in[2] : NULL, 1e-5f, out);
}

Test(grad_norm, rms_norm) {
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(3, 4, 6), 1, 1.0f, true), vt_uniform(VT_SHAPE(6), 2, 0.5f, 1.5f, true)};
  vt_gradcheck("rms_norm", rms_fn, (void *)1, 2, in, NULL);
  vt_gradcheck("rms_norm without weight", rms_fn, NULL, 1, in, NULL);
  vox_tensor_release(in[0]), vox_tensor_release(in[1]);
}

Test(grad_norm, layer_norm) {
  vox_tensor *in[3] = {vt_randn(VT_SHAPE(5, 7), 3, 1.0f, true), vt_uniform(VT_SHAPE(7), 4, 0.5f, 1.5f, true),
                       vt_randn(VT_SHAPE(7), 5, 1.0f, true)};
  vt_gradcheck("layer_norm", ln_fn, (void *)1, 3, in, NULL);
  vt_gradcheck("layer_norm without affine", ln_fn, NULL, 1, in, NULL);
  for (int i = 0; i < 3; i++) vox_tensor_release(in[i]);
}
