/* `vox features`: featurise one audio file (Whisper log-mel or Kaldi fbank, optional LFR stacking and CMVN) and
 * write the [frames, bins] float32 matrix as .npy. A .npy input is taken as float32 mono samples at 16 kHz. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audio.h"
#include "audio/features.h"
#include "cli/cli.h"
#include "io/npy.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: vox features --type whisper-mel|fbank [--n-mels N] [--lfr M,N] [--cmvn FILE] IN_AUDIO --out OUT.npy\n"
          "  --type whisper-mel  OpenAI Whisper log-mel (n_fft 400, hop 160; N = 80 or 128, default 80)\n"
          "  --type fbank        Kaldi fbank (25/10 ms, povey, 0.97 pre-emphasis; N mel bins, default 80)\n"
          "  --lfr M,N           FunASR low frame rate: stack M frames every N (e.g. 7,6)\n"
          "  --cmvn FILE         FunASR am.mvn (<AddShift>/<Rescale>), applied after LFR\n"
          "IN_AUDIO is any file libsndfile reads (resampled to 16 kHz, mixed to mono) or a float32 .npy of 16 kHz\n"
          "samples. OUT.npy holds float32 [frames, bins].\n");
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

static int cmd_features(int argc, char **argv) {
  const char *type = NULL, *in = NULL, *out = NULL, *cmvn_path = NULL;
  int n_mels = 80, lfr_m = 0, lfr_n = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    int has_val = i + 1 < argc;
    if (!strcmp(a, "--type") && has_val)
      type = argv[++i];
    else if (!strcmp(a, "--n-mels") && has_val)
      n_mels = atoi(argv[++i]);
    else if (!strcmp(a, "--lfr") && has_val) {
      if (sscanf(argv[++i], "%d,%d", &lfr_m, &lfr_n) != 2 || lfr_m < 1 || lfr_n < 1) {
        fprintf(stderr, "vox features: --lfr wants M,N with positive integers, got '%s'\n", argv[i]);
        return 2;
      }
    } else if (!strcmp(a, "--cmvn") && has_val)
      cmvn_path = argv[++i];
    else if (!strcmp(a, "--out") && has_val)
      out = argv[++i];
    else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "vox features: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return 2;
    } else if (!in)
      in = a;
    else {
      fprintf(stderr, "vox features: more than one input ('%s' and '%s')\n", in, a);
      return 2;
    }
  }
  if (!type || !in || !out) {
    usage(stderr);
    return 2;
  }
  int whisper = !strcmp(type, "whisper-mel");
  if (!whisper && strcmp(type, "fbank")) {
    fprintf(stderr, "vox features: --type must be whisper-mel or fbank, got '%s'\n", type);
    return 2;
  }

  float *x = NULL, *feats = NULL, *stacked = NULL;
  int64_t n = 0, frames = 0;
  int bins = n_mels, rc = 1;
  vox_cmvn *cmvn = NULL;
  if (ends_with(in, ".npy")) {
    int nd;
    int64_t shape[VOX_NPY_MAX_DIMS];
    if (vox_npy_load_f32(in, &x, &nd, shape) != VOX_OK) goto fail;
    if (nd != 1) {
      fprintf(stderr, "vox features: %s: expected a 1-D array of samples, got %d dimensions\n", in, nd);
      goto done;
    }
    n = shape[0];
  } else if (vox_audio_load(in, 16000, &x, &n) != VOX_OK)
    goto fail;
  if (cmvn_path && vox_cmvn_load(cmvn_path, &cmvn) != VOX_OK) goto fail;

  if (whisper) {
    if (vox_features_whisper_mel(x, n, n_mels, &feats, &frames) != VOX_OK) goto fail;
  } else {
    vox_fbank_opts o = vox_fbank_opts_default();
    o.n_mels = n_mels;
    if (vox_features_fbank(x, n, &o, &feats, &frames, &bins) != VOX_OK) goto fail;
  }
  if (lfr_m) {
    int64_t lf;
    if (vox_features_lfr(feats, frames, bins, lfr_m, lfr_n, &stacked, &lf) != VOX_OK) goto fail;
    free(feats);
    feats = stacked;
    stacked = NULL;
    frames = lf;
    bins *= lfr_m;
  }
  if (cmvn && vox_cmvn_apply(cmvn, feats, frames, bins) != VOX_OK) goto fail;
  if (vox_npy_save_f32(out, feats, 2, (int64_t[]){frames, bins}) != VOX_OK) goto fail;
  fprintf(stderr, "%s: %lld samples -> %lld x %d %s features -> %s\n", in, (long long)n, (long long)frames, bins,
          type, out);
  rc = 0;
  goto done;
fail:
  rc = vox_cli_fail("features");
done:
  free(x);
  free(feats);
  free(stacked);
  vox_cmvn_free(cmvn);
  return rc;
}
VOX_CLI_COMMAND("features", "featurise audio (whisper-mel or fbank, LFR, CMVN) into a .npy", cmd_features)
