/* Finite-difference gradient checks of the SAN-M encoder layer (models/sanm_encoder.h): input, FSMN taps, fused
 * q/k/v projection and norm weight, with padding, the width-changing first layer (no residual), an asymmetric
 * FSMN (even kernel, sanm_shfit), and training-mode dropout (explicit softmax path) replayed from a fixed seed. */
#include "models/sanm_encoder.h"
#include "vox_test.h"

typedef struct sanm_ctx {
  vox_sanm_layer layer;
  vox_tensor *lengths; /* i32 [B] or NULL */
  bool training;
} sanm_ctx;

/* inputs: x, fsmn_block.weight, linear_q_k_v.weight, norm1.weight, swapped into the layer (in place: a
 * checkpointed layer is its own recompute context, so it must outlive the call). */
static vox_status sanm_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  sanm_ctx *c = ctx;
  c->layer.fsmn_block.weight = in[1];
  c->layer.linear_q_k_v.weight = in[2];
  c->layer.norm1.weight = in[3];
  vox_rng rng = vox_rng_make(42); /* the same dropout masks in every evaluation */
  return vox_sanm_layer_forward(&c->layer, in[0], c->lengths, c->training, &rng, out);
}

static void check_layer(const char *name, int in_size, int size, int kernel, int shift, bool training,
                        bool checkpoint) {
  vox_sanm_encoder_config cfg = {.attention_heads = 2, .linear_units = 10, .kernel_size = kernel,
                                 .sanm_shfit = shift, .dropout_rate = training ? 0.2f : 0.0f,
                                 .attention_dropout_rate = training ? 0.3f : 0.0f, .checkpoint = checkpoint};
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_rng rng = vox_rng_make(7);
  sanm_ctx c = {.training = training};
  VT_OK(vox_sanm_layer_init(&c.layer, reg, "layer", in_size, size, &cfg, &rng));
  /* Keep the FFN's ReLU away from its kink (pre-activations ~ N(0, 0.6^2) + 4): a perturbation crossing it would
   * make the finite difference meaningless; the ReLU op has its own check. */
  VT_OK(vox_init_constant(c.layer.w_1.bias, 4.0));
  c.lengths = vt_from_i32(VT_SHAPE(2), (const int32_t[]){6, 4});
  vox_tensor *in[4] = {vt_randn(VT_SHAPE(2, 6, in_size), 1, 1.0f, true),
                       vt_randn(VT_SHAPE(size, 1, kernel), 2, 0.5f, true),
                       vt_randn(VT_SHAPE(3 * size, in_size), 3, 0.4f, true),
                       vt_uniform(VT_SHAPE(in_size), 4, 0.5f, 1.5f, true)};
  vt_gradcheck(name, sanm_fn, &c, 4, in, &(vt_gradcheck_opts){.eps = 1e-2, .atol = 3e-3, .rtol = 3e-2});
  for (int i = 0; i < 4; i++) vox_tensor_release(in[i]);
  vox_tensor_release(c.lengths);
  vox_params_free(reg);
}

Test(grad_sanm, first_layer_changes_width) { check_layer("sanm layer 6 -> 8, kernel 3", 6, 8, 3, 0, false, false); }

Test(grad_sanm, residual_layer_shifted_fsmn) {
  check_layer("sanm layer 8 -> 8, kernel 4, shift 1", 8, 8, 4, 1, false, false);
}

Test(grad_sanm, training_dropout_explicit_attention) {
  check_layer("sanm layer training, dropout 0.2 / attention 0.3", 8, 8, 3, 0, true, false);
}

Test(grad_sanm, checkpointed_training) {
  check_layer("sanm layer checkpointed, training", 8, 8, 5, 2, true, true);
}
