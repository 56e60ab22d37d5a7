/* ChatML: renders messages as "<|im_start|>role\ncontent<|im_end|>\n" and encodes them with a loss mask
 * marking the assistant-content tokens. Each "role\ncontent" is encoded as one segment, exactly as the
 * tokenizer splits the rendered text, so ids match encoding the whole rendering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tok_internal.h"

static const vox_chatml_opts default_opts = {0};

vox_status vox_chatml_render(const vox_chat_message *msgs, size_t n, const vox_chatml_opts *opts, char **out) {
  if (!opts) opts = &default_opts;
  *out = NULL;
  size_t total = 1;
  for (size_t i = 0; i < n; i++) {
    if (!msgs[i].role || !msgs[i].content) return vox_errorf(VOX_ERR_INVALID, "chatml render: message %zu has a NULL role or content", i);
    total += strlen("<|im_start|>\n<|im_end|>\n") + strlen(msgs[i].role) + strlen(msgs[i].content);
  }
  if (opts->add_generation_prompt) total += strlen("<|im_start|>assistant\n");
  char *buf = malloc(total), *p = buf;
  if (!buf) return vox_errorf(VOX_ERR_NOMEM, "chatml render: %zu bytes", total);
  for (size_t i = 0; i < n; i++) p += sprintf(p, "<|im_start|>%s\n%s<|im_end|>\n", msgs[i].role, msgs[i].content);
  if (opts->add_generation_prompt) p += sprintf(p, "<|im_start|>assistant\n");
  *out = buf;
  return VOX_OK;
}

void vox_chatml_encoding_free(vox_chatml_encoding *enc) {
  if (!enc) return;
  vox_token_ids_free(&enc->ids);
  free(enc->mask);
  enc->mask = NULL;
}

/* Grows the mask to cover ids.len entries (the caller sets the new ones). */
static vox_status mask_fill(vox_chatml_encoding *e, size_t *mask_cap) {
  if (e->ids.len > *mask_cap) {
    size_t cap = e->ids.cap;
    uint8_t *m = realloc(e->mask, cap);
    if (!m) return vox_errorf(VOX_ERR_NOMEM, "chatml: mask of %zu", cap);
    e->mask = m;
    *mask_cap = cap;
  }
  return VOX_OK;
}

static vox_status push_masked(vox_chatml_encoding *e, size_t *mask_cap, int32_t id, uint8_t m) {
  VOX_TRY(tok_ids_push(&e->ids, id));
  VOX_TRY(mask_fill(e, mask_cap));
  e->mask[e->ids.len - 1] = m;
  return VOX_OK;
}

/* Byte length of s after NFC (what the tokenizer sees). */
static vox_status nfc_len(const char *s, size_t *len) {
  size_t n = strlen(s);
  bool ascii_ish = true;
  for (size_t i = 0; i < n; i++) ascii_ish &= (unsigned char)s[i] < 0xCC;
  if (ascii_ish) return *len = n, VOX_OK;
  utf8proc_uint8_t *norm = NULL;
  utf8proc_ssize_t nn = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (nn < 0) return vox_errorf(VOX_ERR_INVALID, "chatml: role \"%s\" is not valid UTF-8: %s", s, utf8proc_errmsg(nn));
  free(norm);
  *len = (size_t)nn;
  return VOX_OK;
}

static vox_status encode_turns(const vox_tokenizer *tok, const vox_chat_message *msgs, size_t n, const vox_chatml_opts *opts,
                               vox_chatml_encoding *e) {
  int32_t im_start, im_end;
  if (vox_tokenizer_token_to_id(tok, "<|im_start|>", &im_start) != VOX_OK ||
      vox_tokenizer_token_to_id(tok, "<|im_end|>", &im_end) != VOX_OK)
    return vox_errorf(VOX_ERR_NOT_FOUND, "%s: chatml: expected <|im_start|> and <|im_end|> among the added tokens", tok->path);
  size_t mask_cap = 0;
  char *buf = NULL;
  size_t buf_cap = 0;
  vox_status st = VOX_OK;
  for (size_t i = 0; i < n && st == VOX_OK; i++) {
    const char *role = msgs[i].role, *content = msgs[i].content;
    if (!role || !content) {
      st = vox_errorf(VOX_ERR_INVALID, "chatml: message %zu has a NULL role or content", i);
      break;
    }
    bool assistant = !strcmp(role, "assistant");
    size_t rl = strlen(role), cl = strlen(content), header = 0;
    if (rl + cl + 2 > buf_cap) {
      buf_cap = rl + cl + 2;
      char *nb = realloc(buf, buf_cap);
      if (!nb) {
        st = vox_errorf(VOX_ERR_NOMEM, "chatml: message %zu", i);
        break;
      }
      buf = nb;
    }
    memcpy(buf, role, rl);
    buf[rl] = '\n';
    memcpy(buf + rl + 1, content, cl);
    VOX_CHECK_GOTO(st, push_masked(e, &mask_cap, im_start, 0), done);
    VOX_CHECK_GOTO(st, nfc_len(role, &header), done);
    header += 1;
    size_t first = e->ids.len;
    st = vox_tokenizer_encode(tok, buf, rl + 1 + cl, opts->content_special ? VOX_TOKENIZE_SPECIAL : 0, &e->ids);
    if (st != VOX_OK) {
      vox_error_context(st, "chatml message %zu (role \"%s\"; offsets count from the role's start): ", i, role);
      break;
    }
    VOX_CHECK_GOTO(st, mask_fill(e, &mask_cap), done);
    size_t off = 0;
    for (size_t k = first; k < e->ids.len; k++) {
      e->mask[k] = assistant && off >= header;
      off += tok->tok_len[tok_full_id(tok, e->ids.ids[k])];
    }
    VOX_CHECK_GOTO(st, push_masked(e, &mask_cap, im_end, assistant && !opts->mask_excludes_end), done);
    first = e->ids.len;
    VOX_CHECK_GOTO(st, vox_tokenizer_encode(tok, "\n", 1, 0, &e->ids), done);
    VOX_CHECK_GOTO(st, mask_fill(e, &mask_cap), done);
    for (size_t k = first; k < e->ids.len; k++) e->mask[k] = 0;
  }
  if (st == VOX_OK && opts->add_generation_prompt) {
    VOX_CHECK_GOTO(st, push_masked(e, &mask_cap, im_start, 0), done);
    size_t first = e->ids.len;
    VOX_CHECK_GOTO(st, vox_tokenizer_encode(tok, "assistant\n", 10, 0, &e->ids), done);
    VOX_CHECK_GOTO(st, mask_fill(e, &mask_cap), done);
    for (size_t k = first; k < e->ids.len; k++) e->mask[k] = 0;
  }
done:
  free(buf);
  return st;
}

vox_status vox_chatml_encode(const vox_tokenizer *tok, const vox_chat_message *msgs, size_t n, const vox_chatml_opts *opts,
                             vox_chatml_encoding *out) {
  if (!opts) opts = &default_opts;
  memset(out, 0, sizeof *out);
  vox_status st = encode_turns(tok, msgs, n, opts, out);
  if (st != VOX_OK) vox_chatml_encoding_free(out);
  return st;
}
