/* `vox model-info CONFIG [--batch N --seq N --labels N --frames N --rank N]`: parameter counts per part of the
 * speech-LLM composite (computed from the shapes, nothing allocated), their size in f32 and bf16, and the memory
 * a LoRA SFT step would need in bf16 with and without activation checkpointing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/config.h"
#include "models/model_config.h"
#include "models/model_memory.h"

static double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

static int usage(FILE *f, int code) {
  fprintf(f,
          "usage: vox model-info CONFIG.yaml [--batch N] [--seq N] [--labels N] [--frames N] [--rank N]\n"
          "Parameter counts per part and the memory of a LoRA SFT step (bf16 compute, f32 master weights and AdamW\n"
          "state for trainable parameters). Defaults: batch 8, seq 1024 LLM positions, 256 label positions and 500\n"
          "encoder frames per sample, LoRA rank 8 on q,k,v,o,gate,up,down; the input projector trains too.\n");
  return code;
}

static int cmd_model_info(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help")) return usage(argc < 2 ? stderr : stdout, argc < 2 ? 2 : 0);
  vox_sft_memory_opts o = {.batch = 8, .seq = 1024, .labels = 256, .frames = 500, .lora_rank = 8};
  for (int i = 2; i < argc; i++) {
    int *dst = !strcmp(argv[i], "--batch")    ? &o.batch
               : !strcmp(argv[i], "--seq")    ? &o.seq
               : !strcmp(argv[i], "--labels") ? &o.labels
               : !strcmp(argv[i], "--frames") ? &o.frames
               : !strcmp(argv[i], "--rank")   ? &o.lora_rank
                                              : NULL;
    char *end = NULL;
    if (!dst || i + 1 >= argc || (*dst = (int)strtol(argv[i + 1], &end, 10), *end)) {
      fprintf(stderr, "vox model-info: bad argument '%s'\n", argv[i]);
      return usage(stderr, 2);
    }
    i++;
  }
  vox_config *c = NULL;
  if (vox_config_load(argv[1], 0, NULL, &c) != VOX_OK) return vox_cli_fail("model-info");
  vox_model_config mc;
  if (vox_model_config_parse(vox_config_get(c, "model"), &mc) != VOX_OK) {
    vox_config_free(c);
    return vox_cli_fail("model-info");
  }
  vox_config_free(c);
  int64_t n[6], total = 0;
  vox_model_config_numel(&mc, n);
  printf("model %s\n\n%-18s %16s %12s %12s\n", argv[1], "part", "parameters", "f32 GiB", "bf16 GiB");
  for (int i = 0; i < 6; i++) {
    if (!n[i]) continue;
    total += n[i];
    printf("%-18s %16lld %12.3f %12.3f\n", vox_model_parts[i], (long long)n[i], gib(4.0 * n[i]), gib(2.0 * n[i]));
  }
  printf("%-18s %16lld %12.3f %12.3f\n", "total", (long long)total, gib(4.0 * total), gib(2.0 * total));
  if (!mc.has_llm) return 0;
  vox_sft_memory m;
  if (vox_model_memory_sft(&mc, &o, &m) != VOX_OK) return vox_cli_fail("model-info");
  printf("\nLoRA SFT step: rank %d on q,k,v,o,gate,up,down of every LLM layer, input_projector trainable, the rest "
         "frozen;\nbatch %d x %d LLM positions, %d label positions and %d encoder frames per sample\n",
         o.lora_rank, o.batch, o.seq, o.labels, o.frames);
  printf("  trainable parameters: %lld (LoRA %lld + input_projector %lld)\n", (long long)m.params_trainable,
         (long long)m.params_lora, (long long)(m.params_trainable - m.params_lora));
  const char *fmt = "  %-58s %9.2f GiB\n";
  printf(fmt, "frozen weights (bf16, 2 B each)", gib(m.frozen_weights));
  printf(fmt, "trainable (bf16 copy + f32 master, grad, AdamW m, v: 18 B)", gib(m.trainable_state));
  printf(fmt, "lm_head on label rows (bf16 logits + f32 gradient)", gib(m.act_head));
  printf(fmt, "input projector activations", gib(m.act_projector));
  printf(fmt, "LLM activations, no checkpointing", gib(m.act_llm_full));
  printf(fmt, "LLM activations, per-block checkpointing", gib(m.act_llm_ckpt));
  printf(fmt, "total without checkpointing", gib(m.total_full));
  printf(fmt, "total with checkpointing", gib(m.total_ckpt));
  printf("(estimates: no allocator slack, cuBLAS workspace or temporary buffers; the frozen encoder runs without a "
         "tape)\n");
  return 0;
}
VOX_CLI_COMMAND("model-info", "parameter counts per part and LoRA SFT memory of a model config", cmd_model_info)
