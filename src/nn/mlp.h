/* nn MLP: SwiGLU (Qwen2/LLaMA: down(silu(gate(x)) * up(x)), "gate_proj"/"up_proj"/"down_proj") or GELU
 * (Whisper/CLIP: fc2(gelu(fc1(x))), "fc1"/"fc2"). */
#ifndef VOX_NN_MLP_H
#define VOX_NN_MLP_H

#include <stdbool.h>

#include "nn/linear.h"

typedef enum vox_mlp_kind { VOX_MLP_SWIGLU = 0, VOX_MLP_GELU, VOX_MLP_GELU_TANH } vox_mlp_kind;

typedef struct vox_mlp {
  vox_mlp_kind kind;
  vox_linear gate; /* SwiGLU only */
  vox_linear up;   /* up_proj or fc1 */
  vox_linear down; /* down_proj or fc2 */
} vox_mlp;

vox_status vox_mlp_init(vox_mlp *m, vox_params *reg, const char *name, vox_mlp_kind kind, int d_model, int d_ff,
                        bool bias, vox_rng *rng);
vox_status vox_mlp_forward(const vox_mlp *m, vox_tensor *x, vox_tensor **out);
/* Parses "swiglu" | "gelu" | "gelu_tanh". */
vox_status vox_mlp_kind_parse(const char *name, vox_mlp_kind *kind);

#endif
