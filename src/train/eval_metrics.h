/* Evaluation metrics of the speech tasks: text normalisation, word and character error rates from a
 * Levenshtein alignment (substitutions, deletions, insertions counted apart), and spoken-QA answer accuracy. */
#ifndef VOX_TRAIN_EVAL_METRICS_H
#define VOX_TRAIN_EVAL_METRICS_H
#include <stdbool.h>
#include <stdint.h>
#include "core/status.h"

/* Normalisation applied before scoring (the usual ASR scoring convention, as in Whisper's basic normaliser):
 * Unicode NFKC and case folding; every punctuation or symbol character (Unicode categories P* and S*) becomes a
 * space (so "twenty-one" is two words), except an apostrophe between two letters/digits ("don't" stays one word);
 * whitespace runs collapse to one space; leading/trailing space is removed. Caller frees *out. Invalid UTF-8
 * is an error naming the byte offset. */
vox_status vox_eval_normalize(const char *text, char **out);

/* Edit counts of one hypothesis against one reference (or accumulated over a corpus). */
typedef struct vox_eval_errors {
  int64_t substitutions, deletions, insertions;
  int64_t ref_units; /* reference words (WER) or characters (CER) */
} vox_eval_errors;

/* Word errors: both texts normalised, split on spaces, aligned with unit costs. Accumulates into *acc. */
vox_status vox_eval_word_errors(const char *ref, const char *hyp, vox_eval_errors *acc);
/* Character errors: normalised, spaces removed (as for unsegmented scripts), aligned by Unicode code point. */
vox_status vox_eval_char_errors(const char *ref, const char *hyp, vox_eval_errors *acc);
/* (S + D + I) / N; 0 when there is no reference unit and no insertion, 1 per insertion otherwise. */
double vox_eval_error_rate(const vox_eval_errors *e);

/* Spoken-QA accuracy of one answer: true when the normalised short `answer` occurs in the normalised
 * `response` as a whole-word sequence ("seven" matches "the answer is seven", not "seventeen"); an answer that
 * is a whole number below a million also matches its English words ("104" matches "one hundred and four"). */
vox_status vox_eval_answer_matches(const char *answer, const char *response, bool *match);

#endif
