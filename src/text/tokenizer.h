/* The text module: a byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (Qwen2/2.5/3 kind)
 * and ChatML rendering with assistant loss masks. Owns src/text/; independent of the tensor engine.
 *
 * Encoding follows the Hugging Face pipeline exactly: added/special tokens are matched on the raw text
 * first (leftmost, longest; lstrip/rstrip/single_word honoured), each remaining segment is NFC-normalised,
 * split by the pre-tokenizer regex (PCRE2, UTF+UCP), mapped to bytes and merged by BPE rank.
 *
 * Invalid UTF-8: vox_tokenizer_encode refuses the whole text with VOX_ERR_INVALID and a message naming the
 * byte offset of the first bad sequence ("invalid UTF-8 at byte offset 17"); nothing is appended to the
 * output. Overlong forms, surrogates (U+D800..DFFF) and code points above U+10FFFF are invalid.
 * Decoding is exact on bytes: the concatenated bytes of the tokens, which need not be valid UTF-8 when the
 * ids cut a character in two.
 *
 * Thread safety: a tokenizer is immutable after loading except for its pre-token cache, which is guarded
 * by a try-lock (a busy cache is bypassed, never waited on); encode/decode may run on many threads. */
#ifndef VOX_TEXT_TOKENIZER_H
#define VOX_TEXT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct vox_tokenizer vox_tokenizer;

/* A growable array of token ids; zero-initialise, then pass to encode calls, which append. */
typedef struct vox_token_ids {
  int32_t *ids;
  size_t len, cap;
} vox_token_ids;
void vox_token_ids_free(vox_token_ids *ids); /* frees the array and zeroes the struct */

/* Encode flags. */
enum {
  /* Recognise special tokens (<|im_start|>, <|endoftext|> ...) inside the text. Without it they are plain
   * text: "<|im_end|>" becomes the BPE tokens of its characters. Added tokens that are not special
   * (<think>, <tool_call> ...) are always recognised, as Hugging Face does with split_special_tokens. */
  VOX_TOKENIZE_SPECIAL = 1u << 0,
};
/* Decode flags. */
enum {
  VOX_DETOKENIZE_SKIP_SPECIAL = 1u << 0, /* drop tokens whose added_tokens entry has "special": true */
  /* Invalid UTF-8 (a model's ids may cut a character in two) becomes U+FFFD per bad byte, as Python's
   * bytes.decode(errors="replace") shows it, so generated text can always be scored and stored as JSON. */
  VOX_DETOKENIZE_REPLACE_INVALID = 1u << 1,
};

/* Loads tokenizer.json. Errors name the file, the JSON path and what was expected, e.g.
 * "tokenizer.json: model.type: expected \"BPE\", found \"WordPiece\"". */
vox_status vox_tokenizer_new_from_file(const char *path, vox_tokenizer **out);
void vox_tokenizer_free(vox_tokenizer *tok);

/* Appends the ids of text[0..len) to out (see the file comment for invalid UTF-8). */
vox_status vox_tokenizer_encode(const vox_tokenizer *tok, const char *text, size_t len, unsigned flags,
                                vox_token_ids *out);
/* The bytes of ids[0..n), malloc'ed and NUL-terminated (*out_len excludes the NUL); free() it.
 * An id outside [0, vocab_size) or naming no token is VOX_ERR_INDEX. */
vox_status vox_tokenizer_decode(const vox_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                                char **out, size_t *out_len);
/* The id of a token given as written in tokenizer.json: an added token's content ("<|im_end|>") or a
 * vocab entry in byte-level form ("Ġthe"). VOX_ERR_NOT_FOUND when there is none. */
vox_status vox_tokenizer_token_to_id(const vox_tokenizer *tok, const char *token, int32_t *id);
/* The raw bytes of one token (not NUL-terminated; borrowed, valid while tok lives); NULL when id names
 * no token. */
const char *vox_tokenizer_id_bytes(const vox_tokenizer *tok, int32_t id, size_t *len);
/* Largest token id + 1, added tokens included (151669 for Qwen3; the model's embedding may be larger); under a
 * vocabulary subset, the number of kept ids. */
int32_t vox_tokenizer_vocab_size(const vox_tokenizer *tok);
/* Adds a special token (e.g. the "<|audio|>" placeholder of speech LLMs) at `id`, which must be free (the
 * model's embedding usually has spare rows past the tokenizer's ids). Adding the same token at the same id
 * again is a no-op. Call before the tokenizer is shared between threads. */
vox_status vox_tokenizer_add_special_token(vox_tokenizer *tok, const char *content, int32_t id);
bool vox_tokenizer_is_special(const vox_tokenizer *tok, int32_t id);

/* ---- Vocabulary subsets -------------------------------------------------------------------------- */
/* A model may keep only the rows of the tokens its data uses (model.llm.vocab_subset; docs/file-formats.md):
 * a small model on a narrow corpus then spends nothing on the other 150k rows of the embedding and LM head. After
 * vox_tokenizer_restrict every id this API takes or returns is an index into the kept ids (ascending full ids),
 * vocab_size is their count, and BPE applies only merges whose result is kept, so every text still encodes
 * (unlisted words as smaller pieces, down to the 256 byte tokens a subset must keep); texts made of tokens the
 * subset was built from (vox_tokenizer_subset_close) encode exactly as with the whole vocabulary. An added token
 * written in the text but not kept is an error naming it. Add special tokens before restricting. */
vox_status vox_tokenizer_restrict(vox_tokenizer *tok, const int32_t *ids, int32_t n, const char *origin);
/* Completes keep[0..vocab_size) (1 = kept) into a subset: every byte token, every added token and both halves of
 * every merge building a kept token. Needs the whole vocabulary. */
vox_status vox_tokenizer_subset_close(const vox_tokenizer *tok, uint8_t *keep);
/* Reads a subset file: one full-vocabulary id per line, ascending, '#' comments. *ids is malloc'ed. Errors name
 * file:line. */
vox_status vox_vocab_subset_read(const char *path, int32_t **ids, int32_t *n);

/* ---- ChatML -------------------------------------------------------------------------------------- */
/* One turn: "<|im_start|>" role "\n" content "<|im_end|>" "\n". No system prompt is inserted. */
typedef struct vox_chat_message {
  const char *role;    /* "system", "user", "assistant", ... */
  const char *content; /* UTF-8 */
} vox_chat_message;

typedef struct vox_chatml_opts {
  bool add_generation_prompt; /* append "<|im_start|>assistant\n" */
  bool content_special;       /* recognise special tokens inside content (off: content is plain text) */
  bool mask_excludes_end;     /* leave an assistant turn's <|im_end|> out of the mask */
} vox_chatml_opts;

/* ids plus mask[i] = 1 for the tokens the model is trained on: the content tokens of assistant turns and
 * (unless mask_excludes_end) the <|im_end|> closing them; 0 for role headers, other roles, the "\n"
 * separators and the generation prompt. A token straddling the role header and the content (content
 * starting with "\n" can merge with the header's "\n") counts as header. */
typedef struct vox_chatml_encoding {
  vox_token_ids ids;
  uint8_t *mask; /* ids.len entries */
} vox_chatml_encoding;
void vox_chatml_encoding_free(vox_chatml_encoding *enc);

/* The ChatML text of the messages (malloc'ed, NUL-terminated). opts may be NULL (all false). */
vox_status vox_chatml_render(const vox_chat_message *msgs, size_t n, const vox_chatml_opts *opts, char **out);
/* Token ids and mask of the messages; ids equal encoding vox_chatml_render's text with VOX_TOKENIZE_SPECIAL
 * when the content holds no special tokens. out must be zero-initialised; it is filled, not appended to. */
vox_status vox_chatml_encode(const vox_tokenizer *tok, const vox_chat_message *msgs, size_t n,
                             const vox_chatml_opts *opts, vox_chatml_encoding *out);

#endif
