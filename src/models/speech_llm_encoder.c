/* The composite's audio-encoder dispatch: the model config's `audio_encoder.kind` picks the Whisper encoder
 * (HF WhisperEncoder names under "audio_encoder.") or the SenseVoice SAN-M encoder (FunASR names under
 * "audio_encoder."), plus the optional CTC head on its output. */
#include <stdlib.h>
#include <string.h>

#include "models/speech_llm_internal.h"

static vox_status ctc_head_init(vox_speech_llm *m, vox_rng *rng) {
  const vox_mc_encoder *e = &m->cfg.encoder;
  if (!e->ctc_classes) return VOX_OK;
  int width = e->kind == VOX_ENCODER_WHISPER ? e->d_model : e->output_size;
  return vox_linear_init(&m->ctc, m->params, "audio_encoder.ctc.ctc_lo", width, e->ctc_classes, true, rng);
}

vox_status vox_sllm_encoder_init(vox_speech_llm *m, vox_rng *rng) {
  const vox_mc_encoder *e = &m->cfg.encoder;
  if (e->kind == VOX_ENCODER_WHISPER) {
    vox_whisper_config wc = vox_whisper_config_default();
    wc.num_mel_bins = e->num_mel_bins;
    wc.d_model = e->d_model;
    wc.encoder_layers = e->encoder_layers;
    wc.encoder_attention_heads = e->encoder_attention_heads;
    wc.encoder_ffn_dim = e->encoder_ffn_dim;
    wc.max_source_positions = e->max_source_positions;
    wc.dropout = e->dropout;
    wc.checkpoint = e->checkpoint;
    VOX_TRY(vox_whisper_encoder_init(&m->whisper, m->params, "audio_encoder.", &wc, rng));
    return ctc_head_init(m, rng);
  }
  vox_sanm_encoder_config sc = vox_sanm_encoder_config_small();
  sc.input_size = e->input_size;
  sc.output_size = e->output_size;
  sc.attention_heads = e->attention_heads;
  sc.linear_units = e->linear_units;
  sc.num_blocks = e->num_blocks;
  sc.tp_blocks = e->tp_blocks;
  sc.kernel_size = e->kernel_size;
  sc.sanm_shfit = e->sanm_shfit;
  sc.dropout_rate = e->dropout;
  sc.attention_dropout_rate = e->dropout;
  sc.checkpoint = e->checkpoint;
  m->sanm = calloc(1, sizeof *m->sanm);
  if (!m->sanm) return vox_errorf(VOX_ERR_NOMEM, "speech_llm: out of memory");
  VOX_TRY(vox_sanm_encoder_init(m->sanm, m->params, "audio_encoder.", &sc, rng));
  return ctc_head_init(m, rng);
}

void vox_sllm_encoder_release(vox_speech_llm *m) {
  if (m->cfg.encoder.kind == VOX_ENCODER_WHISPER) vox_whisper_encoder_release(&m->whisper);
  else if (m->sanm) {
    vox_sanm_encoder_release(m->sanm);
    free(m->sanm);
    m->sanm = NULL;
  }
}

vox_status vox_sllm_encoder_forward(vox_speech_llm *m, vox_tensor *feats, vox_tensor *lengths, bool training,
                                    vox_rng *rng, vox_tensor **hidden, vox_tensor **out_lengths) {
  if (m->cfg.encoder.kind == VOX_ENCODER_WHISPER)
    return vox_whisper_encoder_forward(&m->whisper, feats, lengths, NULL, training, rng, hidden, out_lengths);
  return vox_sanm_encoder_forward(m->sanm, feats, lengths, training, rng, hidden, out_lengths);
}
