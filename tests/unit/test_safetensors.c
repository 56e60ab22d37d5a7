/* safetensors files: round trips in f32 and bf16, the header layout the writer produces, files written by an
 * external writer (tests/fixtures/safetensors, made by make_fixtures.py with torch), and every kind of bad file. */
#include "vox_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/npy.h"
#include "io/safetensors.h"

static char dir[128];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/vox_st_XXXXXX");
  cr_assert(mkdtemp(dir));
}
static void teardown(void) {
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  (void)system(cmd);
}
TestSuite(safetensors, .init = setup, .fini = teardown);

static const char *tmp(const char *name) {
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

/* Writes a file with the given header text (length prefix computed, no padding) and data bytes. */
static void write_raw(const char *path, const char *header, const void *data, size_t ndata) {
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  uint64_t n = strlen(header);
  uint8_t len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(n >> (8 * i));
  fwrite(len8, 1, 8, f);
  fwrite(header, 1, n, f);
  if (ndata) fwrite(data, 1, ndata, f);
  fclose(f);
}

static void assert_error_mentions(vox_status st, const char *a, const char *b) {
  cr_assert(st != VOX_OK, "expected an error");
  const char *m = vox_last_error();
  cr_assert(strstr(m, a), "error '%s' should mention '%s'", m, a);
  if (b) cr_assert(strstr(m, b), "error '%s' should mention '%s'", m, b);
}

static uint8_t *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  cr_assert(f);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(*n + 1);
  cr_assert(fread(b, 1, *n, f) == *n);
  b[*n] = 0;
  fclose(f);
  return b;
}

Test(safetensors, round_trip_f32) {
  vox_tensor *a = vt_randn(VT_SHAPE(3, 5), 1, 1.0f, false);
  vox_tensor *b = vt_randn(VT_SHAPE(7), 2, 3.0f, false);
  int32_t iv[4] = {1, -2, 2147483647, -7};
  vox_tensor *c = vt_from_i32(VT_SHAPE(2, 2), iv);
  vox_tensor *s = vt_randn(0, NULL, 3, 1.0f, false); /* a scalar */
  const char *names[] = {"z.weight", "a.bias", "ids", "scale"};
  const vox_tensor *ts[] = {a, b, c, s};
  const char *mk[] = {"format", "note"}, *mv[] = {"pt", "quote \" and \\ backslash"};
  const char *p = tmp("rt.safetensors");
  VT_OK(vox_safetensors_write(p, 4, names, ts, VOX_F32, 2, mk, mv));
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(p, &st));
  cr_assert_eq(vox_safetensors_count(st), 4);
  /* Sorted by name, as the reference writer does. */
  cr_assert_str_eq(vox_safetensors_name_at(st, 0), "a.bias");
  cr_assert_str_eq(vox_safetensors_name_at(st, 1), "ids");
  cr_assert_str_eq(vox_safetensors_name_at(st, 2), "scale");
  cr_assert_str_eq(vox_safetensors_name_at(st, 3), "z.weight");
  cr_assert_null(vox_safetensors_name_at(st, 4));
  cr_assert_str_eq(vox_safetensors_metadata(st, "format"), "pt");
  cr_assert_str_eq(vox_safetensors_metadata(st, "note"), "quote \" and \\ backslash");
  cr_assert_null(vox_safetensors_metadata(st, "nope"));
  vox_st_info in;
  VT_OK(vox_safetensors_info(st, "z.weight", &in));
  cr_assert_eq(in.dtype, VOX_ST_F32);
  cr_assert_eq(in.ndim, 2);
  cr_assert_eq(in.shape[0], 3);
  cr_assert_eq(in.shape[1], 5);
  cr_assert_eq(in.nbytes, 60);
  VT_OK(vox_safetensors_info(st, "ids", &in));
  cr_assert_eq(in.dtype, VOX_ST_I32);
  VT_OK(vox_safetensors_info(st, "scale", &in));
  cr_assert_eq(in.ndim, 0);
  cr_assert_eq(in.numel, 1);

  vox_tensor *a2 = NULL, *b2 = NULL, *c2 = NULL, *s2 = NULL;
  VT_OK(vox_tensor_zeros(VOX_F32, VOX_CPU, VT_SHAPE(3, 5), &a2));
  VT_OK(vox_safetensors_read_into(st, "z.weight", a2));
  vt_assert_close(a2, a, 0, 0, "f32 round trip is exact");
  VT_OK(vox_safetensors_read_tensor(st, "a.bias", VOX_CPU, VOX_F32, &b2));
  vt_assert_close(b2, b, 0, 0, "f32 round trip is exact");
  VT_OK(vox_safetensors_read_tensor(st, "ids", VOX_CPU, VOX_I32, &c2));
  cr_assert_eq(memcmp(vox_tensor_data(c2), iv, sizeof iv), 0);
  VT_OK(vox_safetensors_read_tensor(st, "scale", VOX_CPU, VOX_F32, &s2));
  vt_assert_close(s2, s, 0, 0, "scalar");
  /* Into a bf16 tensor: rounded to nearest even. */
  vox_tensor *ab = NULL, *ref = NULL;
  VT_OK(vox_tensor_zeros(VOX_BF16, VOX_CPU, VT_SHAPE(3, 5), &ab));
  VT_OK(vox_safetensors_read_into(st, "z.weight", ab));
  VT_OK(vox_tensor_to(a, VOX_CPU, VOX_BF16, &ref));
  cr_assert_eq(memcmp(vox_tensor_data(ab), vox_tensor_data(ref), 30), 0);
  vox_safetensors_close(st);
  vox_tensor *all[] = {a, b, c, s, a2, b2, c2, s2, ab, ref};
  for (int i = 0; i < 10; i++) vox_tensor_release(all[i]);
}

Test(safetensors, round_trip_bf16_and_header_layout) {
  vox_tensor *a = vt_randn(VT_SHAPE(4, 3), 5, 1.0f, false);
  vox_tensor *b = vt_randn(VT_SHAPE(5), 6, 1.0f, false);
  const char *names[] = {"model.norm.weight", "lm_head.weight"};
  const vox_tensor *ts[] = {b, a};
  const char *mk[] = {"format"}, *mv[] = {"pt"};
  const char *p = tmp("bf.safetensors");
  VT_OK(vox_safetensors_write(p, 2, names, ts, VOX_BF16, 1, mk, mv));
  size_t n;
  uint8_t *raw = read_file(p, &n);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | raw[i];
  cr_assert_eq(hlen % 8, 0, "header padded to a multiple of 8");
  cr_assert_eq(n, 8 + hlen + (12 + 5) * 2);
  const char *want = "{\"__metadata__\":{\"format\":\"pt\"},"
                     "\"lm_head.weight\":{\"dtype\":\"BF16\",\"shape\":[4,3],\"data_offsets\":[0,24]},"
                     "\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[24,34]}}";
  cr_assert_eq(memcmp(raw + 8, want, strlen(want)), 0, "header is %.*s", (int)hlen, raw + 8);
  for (size_t i = 8 + strlen(want); i < 8 + hlen; i++) cr_assert_eq(raw[i], ' ', "padding is spaces");
  /* Data bytes are the bf16 rounding of the values, in header order. */
  vox_tensor *ab = NULL;
  VT_OK(vox_tensor_to(a, VOX_CPU, VOX_BF16, &ab));
  cr_assert_eq(memcmp(raw + 8 + hlen, vox_tensor_data(ab), 24), 0);
  free(raw);

  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(p, &st));
  vox_tensor *a2 = NULL, *a3 = NULL, *af = NULL;
  VT_OK(vox_safetensors_read_tensor(st, "lm_head.weight", VOX_CPU, VOX_BF16, &a2));
  cr_assert_eq(memcmp(vox_tensor_data(a2), vox_tensor_data(ab), 24), 0, "bf16 -> bf16 is bit exact");
  VT_OK(vox_safetensors_read_tensor(st, "lm_head.weight", VOX_CPU, VOX_F32, &a3));
  VT_OK(vox_tensor_to(ab, VOX_CPU, VOX_F32, &af));
  vt_assert_close(a3, af, 0, 0, "bf16 -> f32 widens exactly");
  vt_assert_close(a3, a, 1e-6, 1.0 / 128, "bf16 keeps 8 bits of mantissa");
  vox_safetensors_close(st);
  vox_tensor *all[] = {a, b, ab, a2, a3, af};
  for (int i = 0; i < 6; i++) vox_tensor_release(all[i]);
}

Test(safetensors, strided_view_and_empty_tensor) {
  vox_tensor *a = vt_randn(VT_SHAPE(4, 6), 9, 1.0f, false), *col = NULL, *e = NULL, *col_c = NULL;
  VT_OK(vox_tensor_view_slice(a, 1, 1, 5, 2, &col)); /* [4,2], strided */
  VT_OK(vox_tensor_zeros(VOX_F32, VOX_CPU, VT_SHAPE(0, 3), &e));
  const char *names[] = {"col", "empty"};
  const vox_tensor *ts[] = {col, e};
  const char *p = tmp("view.safetensors");
  VT_OK(vox_safetensors_write(p, 2, names, ts, VOX_F32, 0, NULL, NULL));
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(p, &st));
  VT_OK(vox_safetensors_read_tensor(st, "col", VOX_CPU, VOX_F32, &col_c));
  vt_assert_close(col_c, col, 0, 0, "a strided view is written as its values");
  /* Reading into a strided destination goes through the tensor API. */
  vox_tensor *b = NULL, *bcol = NULL;
  VT_OK(vox_tensor_zeros(VOX_F32, VOX_CPU, VT_SHAPE(4, 6), &b));
  VT_OK(vox_tensor_view_slice(b, 1, 1, 5, 2, &bcol));
  VT_OK(vox_safetensors_read_into(st, "col", bcol));
  vt_assert_close(bcol, col, 0, 0, "read into a strided view");
  float bv[24];
  VT_OK(vox_tensor_read_f32(b, bv));
  cr_assert_eq(bv[0], 0.0f, "elements outside the view stay untouched");
  vox_st_info in;
  VT_OK(vox_safetensors_info(st, "empty", &in));
  cr_assert_eq(in.numel, 0);
  vox_safetensors_close(st);
  vox_tensor *all[] = {a, col, e, col_c, b, bcol};
  for (int i = 0; i < 6; i++) vox_tensor_release(all[i]);
}

Test(safetensors, writer_refuses_bad_requests) {
  vox_tensor *a = vt_randn(VT_SHAPE(2), 1, 1.0f, false);
  const char *dup[] = {"x", "x"};
  const vox_tensor *ts[] = {a, a};
  const char *p = tmp("bad.safetensors");
  assert_error_mentions(vox_safetensors_write(p, 2, dup, ts, VOX_F32, 0, NULL, NULL), "'x'", "twice");
  cr_assert(access(p, F_OK) != 0, "nothing written");
  const char *one[] = {"x"};
  assert_error_mentions(vox_safetensors_write(p, 1, one, ts, VOX_I32, 0, NULL, NULL), "f32 or bf16", NULL);
  assert_error_mentions(vox_safetensors_write("/nonexistent_dir/x.safetensors", 1, one, ts, VOX_F32, 0, NULL, NULL),
                        "/nonexistent_dir/x.safetensors", NULL);
  vox_tensor_release(a);
}

Test(safetensors, overwrite_is_atomic_replacement) {
  vox_tensor *a = vt_randn(VT_SHAPE(2, 2), 1, 1.0f, false), *b = vt_randn(VT_SHAPE(3), 2, 1.0f, false);
  const char *na[] = {"a"}, *nb[] = {"b"};
  const vox_tensor *ta[] = {a}, *tb[] = {b};
  const char *p = tmp("over.safetensors");
  VT_OK(vox_safetensors_write(p, 1, na, ta, VOX_F32, 0, NULL, NULL));
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(p, &st)); /* a reader keeps its mapping of the old file */
  VT_OK(vox_safetensors_write(p, 1, nb, tb, VOX_F32, 0, NULL, NULL));
  vox_tensor *a2 = NULL;
  VT_OK(vox_safetensors_read_tensor(st, "a", VOX_CPU, VOX_F32, &a2));
  vt_assert_close(a2, a, 0, 0, "old mapping intact");
  vox_safetensors_close(st);
  VT_OK(vox_safetensors_open(p, &st));
  cr_assert(vox_safetensors_has(st, "b") && !vox_safetensors_has(st, "a"));
  vox_safetensors_close(st);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp- > /dev/null", dir);
  cr_assert_neq(system(cmd), 0, "no temporary file left behind");
  vox_tensor_release(a);
  vox_tensor_release(b);
  vox_tensor_release(a2);
}

/* ---- bad files ----------------------------------------------------------------------------------------------- */

static vox_status open_bad(const char *path) {
  vox_safetensors *st = (vox_safetensors *)0x1;
  vox_status s = vox_safetensors_open(path, &st);
  cr_assert_null(st, "no handle on failure");
  return s;
}

Test(safetensors, truncated_file) {
  const char *p = tmp("trunc.safetensors");
  FILE *f = fopen(p, "wb");
  fwrite("\x10\x00\x00", 1, 3, f);
  fclose(f);
  assert_error_mentions(open_bad(p), p, "too short");
  /* A good file cut in the middle of its data: the offsets no longer fit. */
  vox_tensor *a = vt_randn(VT_SHAPE(16), 1, 1.0f, false);
  const char *n[] = {"w"};
  const vox_tensor *ts[] = {a};
  const char *q = tmp("cut.safetensors");
  VT_OK(vox_safetensors_write(q, 1, n, ts, VOX_F32, 0, NULL, NULL));
  size_t len;
  uint8_t *raw = read_file(q, &len);
  f = fopen(q, "wb");
  fwrite(raw, 1, len - 10, f);
  fclose(f);
  free(raw);
  assert_error_mentions(open_bad(q), q, "'w'");
  cr_assert(strstr(vox_last_error(), "outside the data section"), "%s", vox_last_error());
  vox_tensor_release(a);
}

Test(safetensors, header_length_beyond_file) {
  const char *p = tmp("hlen.safetensors");
  FILE *f = fopen(p, "wb");
  uint8_t len8[8] = {0x00, 0x10, 0, 0, 0, 0, 0, 0}; /* 4096 */
  fwrite(len8, 1, 8, f);
  fwrite("{}", 1, 2, f);
  fclose(f);
  assert_error_mentions(open_bad(p), p, "header length 4096");
  uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  f = fopen(p, "wb");
  fwrite(huge, 1, 8, f);
  fwrite("{}", 1, 2, f);
  fclose(f);
  assert_error_mentions(open_bad(p), p, "runs past the end");
}

Test(safetensors, invalid_json) {
  const char *p = tmp("json.safetensors");
  write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]", "\0\0\0\0", 4);
  assert_error_mentions(open_bad(p), p, "not valid JSON");
  write_raw(p, "[1,2]", NULL, 0);
  assert_error_mentions(open_bad(p), p, "JSON object");
  write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} xyz", "\0\0\0\0", 4);
  assert_error_mentions(open_bad(p), p, "after the JSON header");
  write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", "\0\0\0\0", 4);
  assert_error_mentions(open_bad(p), "'w'", "\"shape\" is a string");
  write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "\0\0\0\0", 4);
  assert_error_mentions(open_bad(p), "'w'", "shape[0]");
  write_raw(p, "{\"__metadata__\":{\"format\":3}}", NULL, 0);
  assert_error_mentions(open_bad(p), p, "\"format\" is a number");
  write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "\0\0\0\0\0\0\0\0", 8);
  assert_error_mentions(open_bad(p), "'w'", "twice");
}

Test(safetensors, offsets_out_of_range_and_overlap) {
  const char *p = tmp("offs.safetensors");
  float d[4] = {1, 2, 3, 4};
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", d, 16);
  assert_error_mentions(open_bad(p), p, "'a'");
  cr_assert(strstr(vox_last_error(), "[12, 20]"), "%s", vox_last_error());
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", d, 16);
  assert_error_mentions(open_bad(p), "'a'", "end before begin");
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 16);
  assert_error_mentions(open_bad(p), "'a'", "'b'");
  cr_assert(strstr(vox_last_error(), "overlap"), "%s", vox_last_error());
  /* Holes and empty tensors are fine. */
  write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", d, 16);
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(p, &st));
  vox_tensor *b = NULL;
  VT_OK(vox_safetensors_read_tensor(st, "b", VOX_CPU, VOX_F32, &b));
  float v;
  VT_OK(vox_tensor_read_f32(b, &v));
  cr_assert_eq(v, 4.0f);
  vox_tensor_release(b);
  vox_safetensors_close(st);
}

Test(safetensors, size_shape_disagreement) {
  const char *p = tmp("size.safetensors");
  float d[6] = {0};
  write_raw(p, "{\"enc.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", d, 24);
  assert_error_mentions(open_bad(p), p, "'enc.w'");
  cr_assert(strstr(vox_last_error(), "F32[2,3] needs 24 bytes"), "%s", vox_last_error());
  write_raw(p, "{\"enc.w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", d, 24);
  assert_error_mentions(open_bad(p), "'enc.w'", "BF16[2,3] needs 12 bytes");
  /* A shape whose byte count overflows 64 bits must not wrap to a small size. */
  write_raw(p, "{\"big\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", NULL, 0);
  assert_error_mentions(open_bad(p), "'big'", "too large");
}

Test(safetensors, unknown_and_unreadable_dtypes) {
  const char *p = tmp("dtype.safetensors");
  float d[2] = {0};
  write_raw(p, "{\"x\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8);
  assert_error_mentions(open_bad(p), p, "'x'");
  cr_assert(strstr(vox_last_error(), "unknown dtype \"Q4\""), "%s", vox_last_error());
  /* A valid but unconvertible dtype opens; reading it names the dtype. */
  write_raw(p, "{\"mask\":{\"dtype\":\"BOOL\",\"shape\":[8],\"data_offsets\":[0,8]}}", d, 8);
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(p, &st));
  vox_tensor *t = NULL;
  VT_OK(vox_tensor_zeros(VOX_F32, VOX_CPU, VT_SHAPE(8), &t));
  assert_error_mentions(vox_safetensors_read_into(st, "mask", t), "'mask'", "BOOL");
  vox_tensor_release(t);
  vox_safetensors_close(st);
}

Test(safetensors, read_errors_name_file_and_tensor) {
  vox_tensor *a = vt_randn(VT_SHAPE(2, 3), 1, 1.0f, false);
  const char *n[] = {"layers.0.w"};
  const vox_tensor *ts[] = {a};
  const char *p = tmp("r.safetensors");
  VT_OK(vox_safetensors_write(p, 1, n, ts, VOX_F32, 0, NULL, NULL));
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(p, &st));
  vox_tensor *t = NULL, *ti = NULL;
  VT_OK(vox_tensor_zeros(VOX_F32, VOX_CPU, VT_SHAPE(3, 2), &t));
  assert_error_mentions(vox_safetensors_read_into(st, "layers.0.w", t), p, "'layers.0.w'");
  cr_assert(strstr(vox_last_error(), "F32[2,3]") && strstr(vox_last_error(), "f32[3,2]"), "%s", vox_last_error());
  assert_error_mentions(vox_safetensors_read_into(st, "layers.1.w", t), p, "'layers.1.w'");
  vox_st_info in;
  cr_assert_eq(vox_safetensors_info(st, "nope", &in), VOX_ERR_NOT_FOUND);
  VT_OK(vox_tensor_zeros(VOX_I32, VOX_CPU, VT_SHAPE(2, 3), &ti));
  assert_error_mentions(vox_safetensors_read_into(st, "layers.0.w", ti), "'layers.0.w'", "i32");
  vox_safetensors_close(st);
  assert_error_mentions(open_bad(tmp("missing.safetensors")), "missing.safetensors", NULL);
  vox_tensor_release(a);
  vox_tensor_release(t);
  vox_tensor_release(ti);
}

Test(safetensors, i64_and_f16_conversion) {
  const char *p = tmp("ints.safetensors");
  uint8_t d[32 + 8];
  int64_t iv[4] = {5, -3, 1LL << 40, 0};
  memcpy(d, iv, 32);
  /* f16: 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal) */
  uint16_t hv[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
  memcpy(d + 32, hv, 8);
  write_raw(p, "{\"i\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[0,32]},"
               "\"small\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
               "\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[32,40]}}", d, 40);
  /* "small" overlaps "i": refused. Rewrite without it. */
  assert_error_mentions(open_bad(p), "overlap", NULL);
  write_raw(p, "{\"i\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[0,32]},"
               "\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[32,40]}}", d, 40);
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(p, &st));
  vox_tensor *t = NULL, *f = NULL, *h = NULL;
  VT_OK(vox_tensor_zeros(VOX_I32, VOX_CPU, VT_SHAPE(4), &t));
  assert_error_mentions(vox_safetensors_read_into(st, "i", t), "'i'", "does not fit in i32");
  VT_OK(vox_safetensors_read_tensor(st, "i", VOX_CPU, VOX_F32, &f));
  vt_assert_close_f32(f, (const float[]){5, -3, 1099511627776.0f, 0}, 0, 0, "i64 -> f32");
  VT_OK(vox_safetensors_read_tensor(st, "h", VOX_CPU, VOX_F32, &h));
  vt_assert_close_f32(h, (const float[]){1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f}, 0, 0, "f16 -> f32");
  vox_safetensors_close(st);
  vox_tensor_release(t);
  vox_tensor_release(f);
  vox_tensor_release(h);
}

/* ---- files written by torch (tests/fixtures/safetensors/make_fixtures.py) ------------------------------------ */

static void check_fixture(const char *file, const char *tensor, const char *npy, vox_st_dtype want_dtype) {
  char path[512], npath[512];
  snprintf(path, sizeof path, "%s", vt_fixture(file));
  snprintf(npath, sizeof npath, "%s", vt_fixture(npy));
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(path, &st));
  vox_st_info in;
  VT_OK(vox_safetensors_info(st, tensor, &in));
  cr_assert_eq(in.dtype, want_dtype, "%s: %s dtype", file, tensor);
  vox_npy ref;
  VT_OK(vox_npy_load(npath, &ref));
  cr_assert_eq(ref.ndim, in.ndim, "%s: %s rank", file, tensor);
  for (int i = 0; i < in.ndim; i++) cr_assert_eq(ref.shape[i], in.shape[i]);
  vox_tensor *t = NULL;
  VT_OK(vox_safetensors_read_tensor(st, tensor, VOX_CPU, VOX_F32, &t));
  /* The .npy holds torch's own conversion of the stored bytes to f32: the match must be exact. */
  vt_assert_close_f32(t, ref.data, 0, 0, tensor);
  vox_npy_free(&ref);
  vox_tensor_release(t);
  vox_safetensors_close(st);
}

Test(safetensors, torch_written_fixtures) {
  check_fixture("safetensors/tiny_f32.safetensors", "model.embed_tokens.weight", "safetensors/tiny_f32.embed.npy",
                VOX_ST_F32);
  check_fixture("safetensors/tiny_f32.safetensors", "model.norm.weight", "safetensors/tiny_f32.norm.npy", VOX_ST_F32);
  check_fixture("safetensors/tiny_bf16.safetensors", "model.embed_tokens.weight", "safetensors/tiny_bf16.embed.npy",
                VOX_ST_BF16);
  check_fixture("safetensors/tiny_f16.safetensors", "model.embed_tokens.weight", "safetensors/tiny_f16.embed.npy",
                VOX_ST_F16);
  /* Metadata written by the fixture script. */
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(vt_fixture("safetensors/tiny_bf16.safetensors"), &st));
  cr_assert_str_eq(vox_safetensors_metadata(st, "format"), "pt");
  vox_safetensors_close(st);
}
