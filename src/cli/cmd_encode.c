/* `vox encode --model HF_DIR --features FEATS.npy --out OUT.npy`: runs a speech encoder chosen by config.json's
 * model_type over one utterance's features and writes the float32 [T', d] hidden states as .npy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/autograd.h"
#include "io/hf_config.h"
#include "io/npy.h"
#include "models/sanm_encoder.h"
#include "models/whisper_encoder.h"

/* feats [1, T, F] -> hidden [1, T', d], with the encoder loaded from dir; autograd is off. */
typedef vox_status (*encode_fn)(const char *dir, vox_tensor *feats, vox_tensor **hidden);

static vox_status encode_whisper(const char *dir, vox_tensor *feats, vox_tensor **hidden) {
  vox_params *reg = NULL;
  vox_whisper_encoder m = {0};
  vox_status st = vox_params_new(&reg);
  if (st == VOX_OK) st = vox_whisper_encoder_load_hf(&m, reg, "", dir);
  if (st == VOX_OK) st = vox_whisper_encoder_forward(&m, feats, NULL, NULL, false, NULL, hidden, NULL);
  vox_whisper_encoder_release(&m);
  vox_params_free(reg);
  return st;
}

/* SenseVoice SAN-M (data_tools/convert_funasr.py output): LFR (+ CMVN) fbank features in, same frame count out. */
static vox_status encode_sensevoice(const char *dir, vox_tensor *feats, vox_tensor **hidden) {
  vox_params *reg = NULL;
  vox_sanm_encoder m = {0};
  vox_status st = vox_params_new(&reg);
  if (st == VOX_OK) st = vox_sanm_encoder_load_hf(&m, reg, "", dir);
  if (st == VOX_OK) st = vox_sanm_encoder_forward(&m, feats, NULL, false, NULL, hidden, NULL);
  vox_sanm_encoder_release(&m);
  vox_params_free(reg);
  return st;
}

/* config.json model_type -> encoder. A new encoder (e.g. "sensevoice", SAN-M) is one line here, given a function
 * of encode_fn's signature (load from dir, forward without lengths). */
static const struct {
  const char *model_type;
  encode_fn fn;
} k_encoders[] = {
    {"whisper", encode_whisper},
    {"sensevoice", encode_sensevoice},
};

static void usage(FILE *f) {
  fprintf(f, "usage: vox encode --model HF_DIR --features FEATS.npy --out OUT.npy\n"
             "  HF_DIR     encoder checkpoint (config.json + safetensors); config.json model_type picks it:");
  for (size_t i = 0; i < sizeof k_encoders / sizeof *k_encoders; i++) fprintf(f, " %s", k_encoders[i].model_type);
  fprintf(f, "\n  FEATS.npy  float32 [T, n_mels] (or [1, T, n_mels]) features, e.g. from `vox features`\n"
             "OUT.npy holds float32 [T', d]: the encoder's last hidden state (Whisper: T' = ceil(T/2), any T up to\n"
             "2 * max_source_positions, not only HF's 3000; SenseVoice: T' = T, features [T, n_mels * lfr_m] from\n"
             "`vox features --type fbank --lfr 7,6 --cmvn HF_DIR/am.mvn`).\n");
}

static int cmd_encode(int argc, char **argv) {
  const char *model = NULL, *feats_path = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    int has_val = i + 1 < argc;
    if (!strcmp(a, "--model") && has_val) model = argv[++i];
    else if (!strcmp(a, "--features") && has_val) feats_path = argv[++i];
    else if (!strcmp(a, "--out") && has_val) out = argv[++i];
    else {
      fprintf(stderr, "vox encode: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!model || !feats_path || !out) {
    usage(stderr);
    return 2;
  }
  vox_hf_config *hf = NULL;
  float *x = NULL, *buf = NULL;
  vox_tensor *feats = NULL, *hidden = NULL;
  int rc = 1, nd = 0;
  int64_t shape[VOX_NPY_MAX_DIMS];
  const char *type = NULL;
  encode_fn fn = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, vox_hf_config_load(model, &hf), fail);
  VOX_CHECK_GOTO(st, vox_hf_config_string_req(hf, "model_type", &type), fail);
  for (size_t i = 0; i < sizeof k_encoders / sizeof *k_encoders; i++)
    if (!strcmp(type, k_encoders[i].model_type)) fn = k_encoders[i].fn;
  if (!fn) {
    st = vox_errorf(VOX_ERR_UNSUPPORTED, "%s: model_type \"%s\" is no speech encoder vox knows (see vox encode --help)",
                    vox_hf_config_path(hf), type);
    goto fail;
  }
  VOX_CHECK_GOTO(st, vox_npy_load_f32(feats_path, &x, &nd, shape), fail);
  if (nd == 2) {
    shape[2] = shape[1], shape[1] = shape[0], shape[0] = 1;
  } else if (nd != 3 || shape[0] != 1) {
    st = vox_errorf(VOX_ERR_SHAPE, "%s: features of %d dims, expected [T, n_mels] or [1, T, n_mels]", feats_path, nd);
    goto fail;
  }
  VOX_CHECK_GOTO(st, vox_tensor_from_host(VOX_F32, VOX_CPU, 3, shape, x, &feats), fail);
  vox_no_grad_begin();
  st = fn(model, feats, &hidden);
  vox_no_grad_end();
  if (st != VOX_OK) goto fail;
  int64_t Tp = hidden->shape[1], d = hidden->shape[2];
  buf = malloc((size_t)(Tp * d) * sizeof *buf);
  if (!buf) {
    st = vox_errorf(VOX_ERR_NOMEM, "out of memory");
    goto fail;
  }
  VOX_CHECK_GOTO(st, vox_tensor_read_f32(hidden, buf), fail);
  VOX_CHECK_GOTO(st, vox_npy_save_f32(out, buf, 2, (int64_t[]){Tp, d}), fail);
  printf("vox encode (%s): %lld frames -> %lld x %lld -> %s\n", type, (long long)shape[1], (long long)Tp,
         (long long)d, out);
  rc = 0;
  goto done;
fail:
  rc = vox_cli_fail("encode");
done:
  free(x);
  free(buf);
  vox_tensor_release(feats);
  vox_tensor_release(hidden);
  vox_hf_config_free(hf);
  return rc;
}
VOX_CLI_COMMAND("encode", "speech encoder hidden states of one utterance's features (HF checkpoint)", cmd_encode)
