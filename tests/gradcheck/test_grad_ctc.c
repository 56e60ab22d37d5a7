/* Finite-difference check of the CTC loss: a repeated label (the blank-between-repeats rule), a row shorter than T
 * (its tail frames get no gradient), blank != 0 and rows weighted differently by the checker's random W. */
#include "vox_test.h"

typedef struct ctc_case {
  vox_tensor *targets, *in_lens, *tg_lens;
  int32_t blank;
} ctc_case;

static vox_status ctc_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  const ctc_case *c = ctx;
  return vox_op_ctc_loss(in[0], c->targets, c->in_lens, c->tg_lens, c->blank, out);
}

Test(grad_ctc, ctc_loss) {
  vox_tensor *in[1] = {vt_randn(VT_SHAPE(2, 6, 5), 11, 1.0f, true)};
  ctc_case c = {.targets = vt_from_i32(VT_SHAPE(2, 3), (int32_t[]){1, 1, 2, 3, 4, 0}),
                .in_lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){6, 4}),
                .tg_lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){3, 2}),
                .blank = 0};
  vt_gradcheck("ctc_loss repeated label, short row", ctc_fn, &c, 1, in, NULL);
  vox_tensor_release(c.targets);
  /* blank in the middle of the classes; row 1 repeats its only label */
  c.targets = vt_from_i32(VT_SHAPE(2, 3), (int32_t[]){0, 4, 0, 3, 3, 1});
  c.blank = 2;
  vt_gradcheck("ctc_loss blank 2", ctc_fn, &c, 1, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(c.targets);
  vox_tensor_release(c.in_lens);
  vox_tensor_release(c.tg_lens);
}
