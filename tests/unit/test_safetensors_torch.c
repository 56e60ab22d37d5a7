/* Files vox writes, read back by an independent reader (tests/fixtures/safetensors/check_file.py: json + struct +
 * torch, as strict as the reference implementation): layout, index, and bf16 bytes equal to torch's rounding. */
#include "vox_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/hf_weights.h"
#include "io/npy.h"

static char dir[128];
static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/vox_stt_XXXXXX");
  cr_assert(mkdtemp(dir));
}
static void teardown(void) {
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  (void)system(cmd);
}
TestSuite(safetensors_torch, .init = setup, .fini = teardown);

static bool have_torch(void) {
  return system("/usr/bin/python3 -c 'import torch, numpy' > /dev/null 2>&1") == 0;
}

static void run_check(const char *target, const char *expect) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s", vt_fixture("safetensors/check_file.py"), target, expect);
  cr_assert_eq(system(cmd), 0, "independent reader refused %s (its message is above)", target);
}

Test(safetensors_torch, torch_reads_what_vox_writes) {
  if (!have_torch()) cr_skip("/usr/bin/python3 with torch and numpy is not available");
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  static const struct {
    const char *name;
    int ndim;
    int64_t shape[3];
  } spec[] = {{"enc.model.embed_tokens.weight", 2, {33, 16}},
              {"enc.model.layers.0.self_attn.q_proj.bias", 1, {16}},
              {"enc.model.layers.0.conv.weight", 3, {4, 2, 3}},
              {"enc.model.norm.weight", 1, {16}},
              {"other.weight", 1, {5}}};
  vox_rng rng = vox_rng_make(11);
  char expect[256];
  snprintf(expect, sizeof expect, "%s/expect", dir);
  cr_assert(mkdir(expect, 0777) == 0);
  for (int i = 0; i < 5; i++) {
    vox_tensor *t = NULL;
    VT_OK(vox_params_create(reg, spec[i].name, VOX_CPU, spec[i].ndim, spec[i].shape, &t));
    VT_OK(vox_init_normal(t, &rng, 0.0, 2.0));
    float *v = vox_tensor_f32(t);
    if (i == 0) { /* rounding corner cases: ties both ways, tiny, huge, infinities, a subnormal */
      float corner[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -1.0f - 0x1p-8f, 3.0e-39f, 3.3e38f, INFINITY, -INFINITY,
                        1e-45f, -0.0f, 65504.0f};
      memcpy(v, corner, sizeof corner);
    }
    if (i == 4) continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s.npy", expect, spec[i].name + 4);
    VT_OK(vox_npy_save_f32(path, v, spec[i].ndim, spec[i].shape));
  }
  char out[256];
  snprintf(out, sizeof out, "%s/f32", dir);
  VT_OK(vox_hf_save_params(reg, "enc.", out, VOX_F32, 0));
  run_check(out, expect);
  snprintf(out, sizeof out, "%s/bf16", dir);
  VT_OK(vox_hf_save_params(reg, "enc.", out, VOX_BF16, 1100)); /* 1056 + 32 + 48 + 32 bytes: two shards */
  struct stat sb;
  char shard[512];
  snprintf(shard, sizeof shard, "%s/model-00002-of-00002.safetensors", out);
  cr_assert(stat(shard, &sb) == 0, "expected two shards");
  run_check(out, expect);
  vox_params_free(reg);
}
