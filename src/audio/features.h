/* vox acoustic features on the CPU (module prefix vox_features_, vox_cmvn_, vox_specaugment): Whisper log-mel,
 * Kaldi fbank, FunASR low-frame-rate stacking, CMVN from a FunASR am.mvn file, SpecAugment. Owns
 * src/audio/feat_*.c. All feature matrices are row-major [frames, bins] float32 and malloc()ed (caller free()s). */
#ifndef VOX_AUDIO_FEATURES_H
#define VOX_AUDIO_FEATURES_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rng.h"
#include "core/status.h"

/* ---- Whisper log-mel -------------------------------------------------------------------------------------
 * Identical in definition to openai-whisper's log_mel_spectrogram on 16 kHz input: n_fft 400, hop 160,
 * periodic Hann, centred reflect padding (torch.stft center=True), |X|^2, Slaney mel filters (librosa,
 * fmin 0, fmax 8000), log10(max(x, 1e-10)), clamp below (max - 8), (x + 4) / 4, last frame dropped:
 * *frames = n / 160. n_mels is 80 or 128. Output [frames, n_mels] (Whisper's own is [n_mels, frames]). */
#define VOX_WHISPER_N_FFT 400
#define VOX_WHISPER_HOP 160
#define VOX_WHISPER_RATE 16000
vox_status vox_features_whisper_mel(const float *x, int64_t n, int n_mels, float **out, int64_t *frames);

/* ---- Kaldi fbank -----------------------------------------------------------------------------------------
 * Kaldi compute-fbank / torchaudio.compliance.kaldi.fbank with the options below. The defaults
 * (vox_fbank_opts_default) are Kaldi's and FunASR's: 16 kHz, 25 ms / 10 ms, povey window, pre-emphasis 0.97,
 * DC removal, snip_edges, FFT size rounded up to a power of two (512), power spectrum, 80 HTK-mel triangular
 * bins from 20 Hz to Nyquist, natural log floored at FLT_EPSILON, no energy, input scaled by 32768 (float
 * samples in [-1, 1] to the int16 range, as Kaldi and FunASR see them), dither 0. */
typedef struct vox_fbank_opts {
  int sample_rate;        /* 16000 */
  int n_mels;             /* 80 */
  float frame_length_ms;  /* 25 */
  float frame_shift_ms;   /* 10 */
  float preemph;          /* 0.97 */
  float low_freq;         /* 20 Hz */
  float high_freq;        /* 0: Nyquist; < 0: Nyquist + high_freq (Kaldi's convention) */
  float input_scale;      /* 32768: multiplies the samples before anything else */
  float dither;           /* 0 for evaluation; > 0 adds dither * N(0,1) per sample (Kaldi's dither) */
  vox_rng *rng;           /* required when dither > 0; advanced by the number of samples framed */
  bool remove_dc_offset;  /* true */
  bool round_to_power_of_two; /* true */
  bool snip_edges;        /* true: only whole frames; false is not supported (VOX_ERR_UNSUPPORTED) */
} vox_fbank_opts;
vox_fbank_opts vox_fbank_opts_default(void);

/* opts NULL means defaults. *frames = 1 + (n - frame_len) / shift (0 when n < frame_len: *out is then NULL);
 * *bins = n_mels. */
vox_status vox_features_fbank(const float *x, int64_t n, const vox_fbank_opts *opts, float **out, int64_t *frames,
                              int *bins);

/* ---- low frame rate (FunASR apply_lfr) ---------------------------------------------------------------------
 * Stacks m consecutive frames every n frames: out_frames = ceil(frames / n), out row width m * bins. The first
 * frame is repeated (m-1)/2 times in front, and the last frame repeats to fill the final windows. */
vox_status vox_features_lfr(const float *in, int64_t frames, int bins, int m, int n, float **out, int64_t *out_frames);

/* ---- CMVN (FunASR am.mvn) ---------------------------------------------------------------------------------
 * Reads the Kaldi nnet1 text format FunASR ships as am.mvn:
 *     <Nnet>
 *     <Splice> 560 560
 *     [ 0 ]
 *     <AddShift> 560 560
 *     <LearnRateCoef> 0 [ -8.31 -8.60 ... ]
 *     <Rescale> 560 560
 *     <LearnRateCoef> 0 [ 0.155 0.157 ... ]
 *     </Nnet>
 * Tokens may be spread over lines in any way; only the <AddShift> and <Rescale> components are used (both
 * required, same dimension). Applying does x = (x + shift) * scale per column, as FunASR's apply_cmvn. */
typedef struct vox_cmvn {
  int dim;
  float *shift; /* [dim], added first */
  float *scale; /* [dim], multiplied after */
} vox_cmvn;
vox_status vox_cmvn_load(const char *path, vox_cmvn **out);
/* feats [frames, bins] in place; bins must equal cmvn->dim. */
vox_status vox_cmvn_apply(const vox_cmvn *cmvn, float *feats, int64_t frames, int bins);
void vox_cmvn_free(vox_cmvn *cmvn);

/* ---- SpecAugment ------------------------------------------------------------------------------------------
 * In place on [frames, bins]: n_freq_masks bands of width U{0..max_freq_width} at uniform start, then
 * n_time_masks spans of width U{0..min(max_time_width, max_time_ratio * frames)}; masked cells set to
 * `fill` (or to the utterance mean when fill_mean). All draws come from rng (deterministic per seed). */
typedef struct vox_specaugment_opts {
  int n_freq_masks;     /* e.g. 2 */
  int max_freq_width;   /* e.g. 27 (F) */
  int n_time_masks;     /* e.g. 2 */
  int max_time_width;   /* e.g. 40 (T) */
  float max_time_ratio; /* caps a time mask at this fraction of frames; <= 0: no cap */
  float fill;           /* value written into masks (0) */
  bool fill_mean;       /* use the mean of feats instead of fill */
} vox_specaugment_opts;
vox_status vox_specaugment(float *feats, int64_t frames, int bins, const vox_specaugment_opts *o, vox_rng *rng);

#endif
