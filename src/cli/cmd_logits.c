/* `vox logits --model HF_DIR --ids "1 2 3" --out FILE.npy`: loads a Hugging Face Qwen2 checkpoint (config.json +
 * safetensors) and writes the float32 [T, vocab] logits of one token sequence (positions 0..T-1) as .npy. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/autograd.h"
#include "io/npy.h"
#include "models/qwen2.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: vox logits --model HF_DIR --ids \"ID ID ...\" --out OUT.npy\n"
          "  HF_DIR   a Qwen2/Qwen2.5 directory: config.json and model.safetensors (or a sharded index)\n"
          "  --ids    token ids separated by spaces or commas\n"
          "OUT.npy holds float32 [T, vocab_size]: the logits of every position, as Qwen2ForCausalLM computes them.\n");
}

/* "1 2, 3" -> malloc'd ids; *n their count. */
static int parse_ids(const char *s, int32_t **out, int64_t *n) {
  size_t cap = strlen(s) / 2 + 1;
  int32_t *ids = malloc(cap * sizeof *ids);
  if (!ids) return -1;
  int64_t k = 0;
  const char *p = s;
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
    if (!*p) break;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < 0 || v > 0x7fffffffL || (*end && !strchr(" ,\t\n", *end))) {
      fprintf(stderr, "vox logits: --ids: '%.*s' is not a token id\n", (int)strcspn(p, " ,\t\n"), p);
      free(ids);
      return -1;
    }
    ids[k++] = (int32_t)v;
    p = end;
  }
  if (!k) {
    fprintf(stderr, "vox logits: --ids holds no token id\n");
    free(ids);
    return -1;
  }
  *out = ids;
  *n = k;
  return 0;
}

static int cmd_logits(int argc, char **argv) {
  const char *model = NULL, *ids_s = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    int has_val = i + 1 < argc;
    if (!strcmp(a, "--model") && has_val) model = argv[++i];
    else if (!strcmp(a, "--ids") && has_val) ids_s = argv[++i];
    else if (!strcmp(a, "--out") && has_val) out = argv[++i];
    else {
      fprintf(stderr, "vox logits: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!model || !ids_s || !out) {
    usage(stderr);
    return 2;
  }
  int32_t *ids = NULL;
  int64_t T = 0;
  if (parse_ids(ids_s, &ids, &T)) return 2;
  vox_params *reg = NULL;
  vox_qwen2 m = {0};
  vox_tensor *tid = NULL, *logits = NULL;
  float *buf = NULL;
  int rc = 1;
  vox_status st;
  VOX_CHECK_GOTO(st, vox_params_new(&reg), fail);
  VOX_CHECK_GOTO(st, vox_qwen2_load_hf(&m, reg, "", model), fail);
  VOX_CHECK_GOTO(st, vox_tensor_from_host(VOX_I32, VOX_CPU, 2, (int64_t[]){1, T}, ids, &tid), fail);
  vox_no_grad_begin();
  st = vox_qwen2_forward(&m, tid, NULL, false, NULL, &logits, NULL);
  vox_no_grad_end();
  if (st != VOX_OK) goto fail;
  int64_t V = logits->shape[2];
  buf = malloc((size_t)(T * V) * sizeof *buf);
  if (!buf) {
    st = vox_errorf(VOX_ERR_NOMEM, "out of memory");
    goto fail;
  }
  VOX_CHECK_GOTO(st, vox_tensor_read_f32(logits, buf), fail);
  VOX_CHECK_GOTO(st, vox_npy_save_f32(out, buf, 2, (int64_t[]){T, V}), fail);
  int64_t best = 0;
  for (int64_t v = 1; v < V; v++)
    if (buf[(T - 1) * V + v] > buf[(T - 1) * V + best]) best = v;
  printf("vox logits: %lld positions x %lld vocab -> %s (next-token argmax %lld)\n", (long long)T, (long long)V, out,
         (long long)best);
  rc = 0;
  goto done;
fail:
  rc = vox_cli_fail("logits");
done:
  free(buf);
  free(ids);
  vox_tensor_release(tid);
  vox_tensor_release(logits);
  vox_qwen2_release(&m);
  vox_params_free(reg);
  return rc;
}
VOX_CLI_COMMAND("logits", "logits of a token sequence under a Hugging Face Qwen2 checkpoint", cmd_logits)
