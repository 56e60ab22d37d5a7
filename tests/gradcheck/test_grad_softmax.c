/* Finite-difference checks of softmax and log_softmax over the last dim and over inner dims. */
#include "vox_test.h"

typedef struct sm_case {
  int dim;
  bool log;
} sm_case;

static vox_status sm_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  const sm_case *c = ctx;
  return c->log ? vox_op_log_softmax(in[0], c->dim, out) : vox_op_softmax(in[0], c->dim, out);
}

Test(grad_softmax, softmax_and_log_softmax) {
  vox_tensor *in[1] = {vt_randn(VT_SHAPE(2, 3, 4), 1, 1.5f, true)};
  sm_case cases[] = {{-1, false}, {1, false}, {0, false}, {-1, true}, {1, true}, {0, true}};
  const char *names[] = {"softmax dim -1", "softmax dim 1", "softmax dim 0",
                         "log_softmax dim -1", "log_softmax dim 1", "log_softmax dim 0"};
  for (int i = 0; i < 6; i++) vt_gradcheck(names[i], sm_fn, &cases[i], 1, in, NULL);
  vox_tensor_release(in[0]);
}
