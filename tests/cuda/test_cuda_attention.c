/* CUDA attention (tensor-core flash kernels and the simple reference kernels) against the CPU op, forward and
 * backward, f32 and bf16: every mask kind (causal, causal offset, kv_lens padding, chunk masks with and without
 * causal, additive bias, fully masked rows), GQA, head dims 64/128/odd, and sequence lengths off the tile size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "vox_test.h"

static void need_gpu(void) {
  if (!vox_backend_get(VOX_CUDA)->available) cr_skip_test("no CUDA device: CUDA attention tests skipped");
}

typedef struct acase {
  const char *name;
  int64_t B, Hq, Hkv, T, S, D, Dv;
  bool causal;
  int64_t offset, chunk;
  const int32_t *lens; /* [B] or NULL */
  bool bias;
} acase;

static vox_tensor *to_dev(const vox_tensor *t, vox_device dev, vox_dtype dtype) {
  vox_tensor *o = NULL;
  VT_OK(vox_tensor_to(t, dev, dtype, &o));
  return o;
}
static vox_tensor *rounded(const vox_tensor *x, vox_dtype dtype) {
  vox_tensor *b = to_dev(x, VOX_CPU, dtype), *f = to_dev(b, VOX_CPU, VOX_F32);
  vox_tensor_release(b);
  return f;
}

/* |a - ref| <= tol * (max|ref| + |ref|) elementwise: errors measured against the tensor's own scale. */
static void assert_close_scaled(const vox_tensor *a, const vox_tensor *ref, double tol, const char *what) {
  int64_t n = vox_tensor_numel(ref);
  float *r = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  VT_OK(vox_tensor_read_f32(ref, r));
  double mx = 0;
  for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(r[i]));
  free(r);
  vt_assert_close(a, ref, tol * (mx > 0 ? mx : 1.0), tol, what);
}

typedef struct aresult {
  vox_tensor *o, *dq, *dk, *dv;
} aresult;

/* o = attention(q, k, v) on `dev` in `dtype`, loss = sum(o * w) (f32), and the three gradients (as CPU f32). */
static aresult run(const acase *c, vox_device dev, vox_dtype dtype, vox_tensor *q0, vox_tensor *k0, vox_tensor *v0,
                   vox_tensor *w0, vox_tensor *bias0) {
  vox_tensor *q = to_dev(q0, dev, dtype), *k = to_dev(k0, dev, dtype), *v = to_dev(v0, dev, dtype);
  vox_tensor *w = to_dev(w0, dev, dtype), *lens = NULL, *bias = bias0 ? to_dev(bias0, dev, VOX_F32) : NULL;
  q->requires_grad = k->requires_grad = v->requires_grad = true;
  if (c->lens) {
    vox_tensor *l = vt_from_i32(1, (int64_t[]){c->B}, c->lens);
    lens = to_dev(l, dev, VOX_I32);
    vox_tensor_release(l);
  }
  vox_attention_mask m = {.causal = c->causal, .causal_offset = c->offset, .chunk_size = c->chunk, .kv_lens = lens,
                          .bias = bias};
  vox_tensor *o = NULL, *ow = NULL, *owf = NULL, *loss = NULL;
  VT_OK(vox_op_attention(q, k, v, &m, 0.0f, &o));
  cr_assert(o->dtype == dtype, "%s: output dtype %s", c->name, vox_dtype_name(o->dtype));
  VT_OK(vox_op_mul(o, w, &ow));
  VT_OK(vox_op_cast(ow, VOX_F32, &owf));
  VT_OK(vox_op_sum(owf, 0, NULL, false, &loss));
  VT_OK(vox_backward(loss, NULL));
  aresult r = {to_dev(o, VOX_CPU, VOX_F32), to_dev(q->grad, VOX_CPU, VOX_F32), to_dev(k->grad, VOX_CPU, VOX_F32),
               to_dev(v->grad, VOX_CPU, VOX_F32)};
  vox_tensor *all[] = {q, k, v, w, lens, bias, o, ow, owf, loss};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
  return r;
}

static void free_result(aresult *r) {
  vox_tensor_release(r->o);
  vox_tensor_release(r->dq);
  vox_tensor_release(r->dk);
  vox_tensor_release(r->dv);
}

static void compare(const acase *c, const char *path, const aresult *got, const aresult *ref, double tol) {
  char msg[200];
  const vox_tensor *g[4] = {got->o, got->dq, got->dk, got->dv}, *r[4] = {ref->o, ref->dq, ref->dk, ref->dv};
  const char *names[4] = {"o", "dq", "dk", "dv"};
  for (int i = 0; i < 4; i++) {
    snprintf(msg, sizeof msg, "%s (%s): %s", c->name, path, names[i]);
    assert_close_scaled(g[i], r[i], tol, msg);
  }
}

/* f32 on CUDA (reference kernels) vs CPU; bf16 on CUDA (tensor-core kernels where they apply, and the forced
 * reference kernels) vs CPU on the same bf16-rounded inputs. */
static void check_case(const acase *c, uint64_t seed) {
  vox_tensor *q = vt_randn(4, (int64_t[]){c->B, c->Hq, c->T, c->D}, seed, 1.0f, false);
  vox_tensor *k = vt_randn(4, (int64_t[]){c->B, c->Hkv, c->S, c->D}, seed + 1, 1.0f, false);
  vox_tensor *v = vt_randn(4, (int64_t[]){c->B, c->Hkv, c->S, c->Dv}, seed + 2, 1.0f, false);
  vox_tensor *w = vt_randn(4, (int64_t[]){c->B, c->Hq, c->T, c->Dv}, seed + 3, 1.0f, false);
  vox_tensor *bias = c->bias ? vt_randn(4, (int64_t[]){1, c->Hq, c->T, c->S}, seed + 4, 1.0f, false) : NULL;

  aresult cpu = run(c, VOX_CPU, VOX_F32, q, k, v, w, bias);
  aresult g32 = run(c, VOX_CUDA, VOX_F32, q, k, v, w, bias);
  compare(c, "f32", &g32, &cpu, 2e-4);

  vox_tensor *qr = rounded(q, VOX_BF16), *kr = rounded(k, VOX_BF16), *vr = rounded(v, VOX_BF16), *wr = rounded(w, VOX_BF16);
  aresult cpu_r = run(c, VOX_CPU, VOX_F32, qr, kr, vr, wr, bias);
  /* bf16: P and dS are rounded to 8 bits before their products, outputs and gradients are bf16. */
  aresult g16 = run(c, VOX_CUDA, VOX_BF16, qr, kr, vr, wr, bias);
  compare(c, "bf16", &g16, &cpu_r, 3e-2);
  setenv("VOX_CUDA_ATTENTION", "reference", 1);
  aresult g16r = run(c, VOX_CUDA, VOX_BF16, qr, kr, vr, wr, bias);
  unsetenv("VOX_CUDA_ATTENTION");
  compare(c, "bf16 reference kernel", &g16r, &cpu_r, 3e-2);

  free_result(&cpu);
  free_result(&g32);
  free_result(&cpu_r);
  free_result(&g16);
  free_result(&g16r);
  vox_tensor *all[] = {q, k, v, w, bias, qr, kr, vr, wr};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
}

Test(cuda_attention, no_mask_and_causal) {
  need_gpu();
  acase a = {.name = "no mask D64 GQA", .B = 2, .Hq = 4, .Hkv = 2, .T = 77, .S = 93, .D = 64, .Dv = 64};
  check_case(&a, 100);
  acase b = {.name = "causal D64", .B = 2, .Hq = 4, .Hkv = 2, .T = 130, .S = 130, .D = 64, .Dv = 64, .causal = true};
  check_case(&b, 110);
  acase c = {.name = "causal D128 MHA", .B = 1, .Hq = 2, .Hkv = 2, .T = 70, .S = 70, .D = 128, .Dv = 128, .causal = true};
  check_case(&c, 120);
}

Test(cuda_attention, causal_offset) {
  need_gpu();
  /* Queries are the last T of S positions (KV-cache style), and a negative offset (early queries see nothing). */
  acase a = {.name = "causal offset 67", .B = 2, .Hq = 2, .Hkv = 1, .T = 33, .S = 100, .D = 64, .Dv = 64,
             .causal = true, .offset = 67};
  check_case(&a, 200);
  acase b = {.name = "causal offset -5", .B = 1, .Hq = 2, .Hkv = 2, .T = 40, .S = 40, .D = 64, .Dv = 64,
             .causal = true, .offset = -5};
  check_case(&b, 210);
}

Test(cuda_attention, kv_lens_padding_and_empty_rows) {
  need_gpu();
  static const int32_t lens[2] = {100, 41}, lens0[2] = {0, 23};
  acase a = {.name = "kv_lens", .B = 2, .Hq = 4, .Hkv = 4, .T = 50, .S = 100, .D = 128, .Dv = 128, .lens = lens};
  check_case(&a, 300);
  /* Batch row 0 has no keys at all: zero output and zero gradients, lse = -inf. */
  acase b = {.name = "kv_lens with an empty row", .B = 2, .Hq = 2, .Hkv = 1, .T = 20, .S = 30, .D = 64, .Dv = 64,
             .causal = true, .offset = 10, .lens = lens0};
  check_case(&b, 310);
}

Test(cuda_attention, chunk_masks) {
  need_gpu();
  static const int32_t lens[2] = {70, 55};
  /* Chunk-causal whether or not `causal` is set. */
  acase a = {.name = "chunk 16", .B = 1, .Hq = 2, .Hkv = 1, .T = 70, .S = 70, .D = 64, .Dv = 64, .chunk = 16};
  check_case(&a, 400);
  acase b = {.name = "chunk 24 causal + kv_lens", .B = 2, .Hq = 2, .Hkv = 2, .T = 70, .S = 70, .D = 64, .Dv = 64,
             .causal = true, .chunk = 24, .lens = lens};
  check_case(&b, 410);
}

Test(cuda_attention, bias_and_other_head_dims) {
  need_gpu();
  acase a = {.name = "bias causal", .B = 2, .Hq = 2, .Hkv = 1, .T = 45, .S = 45, .D = 64, .Dv = 64, .causal = true,
             .bias = true};
  check_case(&a, 500);
  acase b = {.name = "D40 Dv24 GQA 6/2", .B = 1, .Hq = 6, .Hkv = 2, .T = 37, .S = 51, .D = 40, .Dv = 24, .causal = true,
             .offset = 14};
  check_case(&b, 510);
}

Test(cuda_attention, strided_qkv_views) {
  need_gpu();
  /* q, k, v as head-split views of one fused projection [B, T, 3, H, D] (row stride 3*H*D), as models make them. */
  const int64_t B = 2, T = 66, H = 2, D = 64;
  vox_tensor *qkv = vt_randn(5, (int64_t[]){B, T, 3, H, D}, 600, 1.0f, false);
  vox_tensor *outs[2][3];
  for (int dev = 0; dev < 2; dev++) {
    vox_tensor *x = to_dev(qkv, dev ? VOX_CUDA : VOX_CPU, dev ? VOX_BF16 : VOX_F32);
    if (!dev) {
      vox_tensor *xr = rounded(x, VOX_BF16);
      vox_tensor_release(x);
      x = xr;
    }
    vox_tensor *parts[3];
    for (int i = 0; i < 3; i++) {
      vox_tensor *s = NULL;
      VT_OK(vox_tensor_view_slice(x, 2, i, i + 1, 1, &s));
      vox_tensor *r = NULL;
      VT_OK(vox_tensor_view(s, 4, (int64_t[]){B, H, T, D},
                            (int64_t[]){s->strides[0], s->strides[3], s->strides[1], s->strides[4]}, s->offset, &r));
      vox_tensor_release(s);
      parts[i] = r;
    }
    vox_attention_mask m = {.causal = true};
    vox_tensor *o = NULL;
    VT_OK(vox_op_attention(parts[0], parts[1], parts[2], &m, 0.0f, &o));
    outs[dev][0] = to_dev(o, VOX_CPU, VOX_F32);
    vox_tensor_release(o);
    for (int i = 0; i < 3; i++) vox_tensor_release(parts[i]);
    vox_tensor_release(x);
  }
  assert_close_scaled(outs[1][0], outs[0][0], 3e-2, "strided q/k/v views, bf16");
  vox_tensor_release(outs[0][0]);
  vox_tensor_release(outs[1][0]);
  vox_tensor_release(qkv);
}

#include "cuda_skip_main.h"
