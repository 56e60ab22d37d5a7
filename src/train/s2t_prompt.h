/* Speech-to-text samples as ChatML token streams: the system prompt, a user turn holding the audio placeholder
 * (plus the task's instruction for ASR), and the assistant's text as the only trained tokens. */
#ifndef VOX_TRAIN_S2T_PROMPT_H
#define VOX_TRAIN_S2T_PROMPT_H
#include <stdbool.h>
#include <stdint.h>
#include "data/manifest.h"
#include "text/tokenizer.h"

/* What the prompts say; the recipe's `prompts` node fills it (docs/recipes.md). */
typedef struct vox_s2t_prompts {
  const char *system;          /* system turn; NULL or "" for none */
  const char *asr_instruction; /* follows the audio in the user turn of `asr` samples */
  const char *audio_token;     /* the placeholder written where the audio goes ("<|audio|>") */
} vox_s2t_prompts;

vox_s2t_prompts vox_s2t_prompts_default(void);

/* How a sample is scored at evaluation. */
typedef enum vox_s2t_kind {
  VOX_S2T_ASR = 0, /* reference = the transcript: WER/CER */
  VOX_S2T_QA       /* reference = the assistant turn, `answer` = the short checkable answer: accuracy */
} vox_s2t_kind;

typedef struct vox_s2t_encoded {
  vox_token_ids ids;   /* ChatML ids with exactly one placeholder id */
  int32_t *labels;     /* ids.len entries: the id where trained (assistant content and its <|im_end|>), else -100;
                          NULL for generation prompts */
  vox_s2t_kind kind;
  char *reference;     /* the assistant text (the transcript for ASR) */
  char *answer;        /* QA only: the manifest's `answer` (NULL when absent) */
} vox_s2t_encoded;

void vox_s2t_encoded_free(vox_s2t_encoded *e);

/* Encodes one manifest sample of task `asr` (text) or `s2t_chat` (messages with the placeholder in a user turn).
 * for_generation: the stream stops after "<|im_start|>assistant\n" (no labels). The tokenizer must know the
 * placeholder as a special token (vox_tokenizer_add_special_token). Errors name the manifest line. */
vox_status vox_s2t_encode(const vox_tokenizer *tok, const vox_s2t_prompts *prompts, int32_t audio_id,
                          const vox_sample *sample, const char *manifest_path, bool for_generation,
                          vox_s2t_encoded *out);

/* The sample's text form: the same conversation with the audio placeholder replaced by what the audio says (an
 * asr sample's `text`; an s2t_chat sample's `transcript`, else its `question`), labels as vox_s2t_encode's. A
 * text LLM trained on these learns the speech tasks' text side (repeat a sentence, answer a written question),
 * which is what a pretrained chat LLM brings to the alignment stages. Errors name the manifest line. */
vox_status vox_s2t_encode_as_text(const vox_tokenizer *tok, const vox_s2t_prompts *prompts, const vox_sample *sample,
                                  const char *manifest_path, vox_s2t_encoded *out);

/* A spelled text form: what the audio says written one alphabet symbol per token ("h", "e", "l", "l", "o", " ",
 * ...), which is how a CTC-compressed encoder (model.audio_encoder.ctc_compress) presents speech to the LLM: about
 * one position per recognised character. An LLM warmed up on spelled forms is to learn reading letters into words
 * and correcting misspellings (docs/results.md measures how far 500 steps get). The noise simulates recognition
 * errors: each symbol is, with probability `noise`, replaced by another symbol, dropped, or preceded by an extra
 * one (one third each). */
typedef struct vox_s2t_spelling {
  char alphabet[128];
  int32_t symbol_ids[128]; /* the token of alphabet[i] on its own */
  double noise;
} vox_s2t_spelling;

/* Looks up each symbol's token; a symbol the tokenizer does not encode as exactly one token is an error. */
vox_status vox_s2t_spelling_init(const vox_tokenizer *tok, const char *alphabet, double noise, vox_s2t_spelling *out);
/* The sample's conversation with the placeholder (id audio_id) replaced by the spelled text of its audio (as
 * vox_s2t_encode_as_text takes it); the noise is drawn from noise_seed. Labels as vox_s2t_encode's. */
vox_status vox_s2t_encode_spelled(const vox_tokenizer *tok, const vox_s2t_prompts *prompts, int32_t audio_id,
                                  const vox_s2t_spelling *spelling, uint64_t noise_seed, const vox_sample *sample,
                                  const char *manifest_path, vox_s2t_encoded *out);

#endif
