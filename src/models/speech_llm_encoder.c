/* The composite's audio-encoder dispatch: the model config's `audio_encoder.kind` picks the Whisper encoder
 * (HF WhisperEncoder names under "audio_encoder.") or the SenseVoice SAN-M encoder. */
#include <stdlib.h>

#include "models/speech_llm_internal.h"

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
    return vox_whisper_encoder_init(&m->whisper, m->params, "audio_encoder.", &wc, rng);
  }
  return vox_errorf(VOX_ERR_UNSUPPORTED, "speech_llm: audio_encoder kind sanm is not available in this build yet");
}

void vox_sllm_encoder_release(vox_speech_llm *m) {
  if (m->cfg.encoder.kind == VOX_ENCODER_WHISPER) vox_whisper_encoder_release(&m->whisper);
}

vox_status vox_sllm_encoder_forward(vox_speech_llm *m, vox_tensor *feats, vox_tensor *lengths, bool training,
                                    vox_rng *rng, vox_tensor **hidden, vox_tensor **out_lengths) {
  if (m->cfg.encoder.kind == VOX_ENCODER_WHISPER)
    return vox_whisper_encoder_forward(&m->whisper, feats, lengths, NULL, training, rng, hidden, out_lengths);
  return vox_errorf(VOX_ERR_UNSUPPORTED, "speech_llm: audio_encoder kind sanm is not available in this build yet");
}
