/* Runs the attention kernels of kernels/flash_attn_{fwd,bwd,ref}.cu on the CPU (one host thread per CUDA thread,
 * emulated warps) and compares o, lse, dq, dk, dv with a double-precision reference for every mask kind. */
#include "cuda_bf16.h"
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <functional>
thread_local dim3e threadIdx, blockIdx;
dim3e blockDim;
std::barrier<> *emu_block_bar;
std::barrier<> *emu_warp_bar[8];
unsigned char *emu_smem_ptr;
uint64_t emu_xchg[8][32];
uint32_t emu_A[8][32][4], emu_B[8][32][2];
#include "fwd.inc"
#include "bwd.inc"
#include "ref.inc"

static void launch(unsigned gx, unsigned gy, int threads, size_t smem, const std::function<void()> &k) {
  blockDim.x = threads;
  std::vector<unsigned char> buf(smem + 256);
  for (unsigned by = 0; by < gy; by++)
    for (unsigned bx = 0; bx < gx; bx++) {
      memset(buf.data(), 0xCD, buf.size()); // poison: uninitialised shared reads show
      emu_smem_ptr = (unsigned char *)(((uintptr_t)buf.data() + 127) & ~(uintptr_t)127);
      std::barrier<> bb(threads);
      emu_block_bar = &bb;
      std::vector<std::barrier<> *> wb;
      for (int w = 0; w < threads / 32; w++) emu_warp_bar[w] = new std::barrier<>(32);
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; t++)
        ts.emplace_back([&, t] { threadIdx.x = t; blockIdx.x = bx; blockIdx.y = by; k(); });
      for (auto &t : ts) t.join();
      for (int w = 0; w < threads / 32; w++) delete emu_warp_bar[w];
    }
}

static uint64_t rs = 88172645463325252ull;
static float rnd() { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1; }
static float bfr(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

struct Case { const char *name; int64_t B, Hq, Hkv, T, S, D; bool causal; int64_t off, chunk; std::vector<int32_t> lens; bool bias; };

static int64_t vis_end(const Case &c, int64_t b, int64_t t) {
  int64_t hi = c.S; if (!c.lens.empty()) hi = std::min<int64_t>(hi, c.lens[b]);
  int64_t tp = t + c.off;
  if (c.chunk > 0) { int64_t fd = tp >= 0 ? tp / c.chunk : -((-tp + c.chunk - 1) / c.chunk); hi = std::min(hi, (fd + 1) * c.chunk); }
  else if (c.causal) hi = std::min(hi, tp + 1);
  return hi < 0 ? 0 : hi;
}

static double maxabs(const std::vector<double> &v) { double m = 0; for (double x : v) m = std::max(m, fabs(x)); return m; }
static bool cmp(const char *what, const std::vector<float> &got, const std::vector<double> &ref, double tol) {
  double m = maxabs(ref), worst = 0; size_t wi = 0;
  for (size_t i = 0; i < ref.size(); i++) { double e = fabs(got[i] - ref[i]) / (tol * (m + fabs(ref[i])) + 1e-30); if (e > worst) { worst = e; wi = i; } }
  printf("  %-4s worst ratio %.3f (at %zu: %g vs %g, max %g)%s\n", what, worst, wi, got.empty()?0.0:got[wi], ref[wi], m, worst > 1 ? "  <-- FAIL" : "");
  return worst <= 1;
}

static bool run(const Case &c, bool tc, bool bf16) {
  int64_t D = c.D, nq = c.B * c.Hq * c.T * D, nk = c.B * c.Hkv * c.S * D;
  std::vector<float> q(nq), k(nk), v(nk), dO(nq), bias;
  for (auto &x : q) x = bfr(rnd()); for (auto &x : k) x = bfr(rnd()); for (auto &x : v) x = bfr(rnd()); for (auto &x : dO) x = bfr(rnd());
  if (c.bias) { bias.resize(c.B * c.Hq * c.T * c.S); for (auto &x : bias) x = rnd(); }
  float scale = 1.0f / sqrtf((float)D);
  // reference in double
  std::vector<double> o(nq), lse(c.B * c.Hq * c.T), dq(nq), dk(nk), dv(nk);
  int64_t g = c.Hq / c.Hkv;
  for (int64_t b = 0; b < c.B; b++) for (int64_t h = 0; h < c.Hq; h++) for (int64_t t = 0; t < c.T; t++) {
    int64_t hk = h / g, hi = vis_end(c, b, t); const float *qr = &q[((b * c.Hq + h) * c.T + t) * D];
    std::vector<double> s(c.S, -INFINITY); double m = -INFINITY;
    for (int64_t j = 0; j < hi; j++) { double d = 0; const float *kr = &k[((b * c.Hkv + hk) * c.S + j) * D]; for (int64_t x = 0; x < D; x++) d += (double)qr[x] * kr[x];
      s[j] = d * scale + (c.bias ? bias[((b * c.Hq + h) * c.T + t) * c.S + j] : 0); m = std::max(m, s[j]); }
    int64_t row = (b * c.Hq + h) * c.T + t;
    if (m == -INFINITY) { lse[row] = -INFINITY; continue; }
    double sum = 0; for (int64_t j = 0; j < hi; j++) sum += exp(s[j] - m);
    lse[row] = m + log(sum);
    std::vector<double> p(c.S, 0); for (int64_t j = 0; j < hi; j++) p[j] = exp(s[j] - lse[row]);
    double *orow = &o[row * D]; for (int64_t j = 0; j < hi; j++) for (int64_t x = 0; x < D; x++) orow[x] += p[j] * v[((b * c.Hkv + hk) * c.S + j) * D + x];
    const float *gr = &dO[row * D]; double delta = 0; for (int64_t x = 0; x < D; x++) delta += gr[x] * orow[x];
    for (int64_t j = 0; j < hi; j++) {
      const float *vr = &v[((b * c.Hkv + hk) * c.S + j) * D], *kr = &k[((b * c.Hkv + hk) * c.S + j) * D];
      double dp = 0; for (int64_t x = 0; x < D; x++) dp += gr[x] * vr[x];
      double ds = p[j] * (dp - delta);
      for (int64_t x = 0; x < D; x++) { dq[row * D + x] += scale * ds * kr[x]; dk[((b * c.Hkv + hk) * c.S + j) * D + x] += scale * ds * qr[x]; dv[((b * c.Hkv + hk) * c.S + j) * D + x] += p[j] * gr[x]; }
    }
  }
  // device buffers
  auto tobf = [](const std::vector<float> &x) { std::vector<__nv_bfloat16> r(x.size()); for (size_t i = 0; i < x.size(); i++) r[i] = __float2bfloat16_rn(x[i]); return r; };
  std::vector<__nv_bfloat16> qb = tobf(q), kb = tobf(k), vb = tobf(v), gb = tobf(dO), ob(nq), dqb(nq), dkb(nk), dvb(nk);
  std::vector<float> lsef(lse.size()), of(nq), dqf(nq), dkf(nk), dvf(nk), delta(lse.size()), dqacc(nq, 0.0f);
  vox_fa_args a{}; a.bf16 = bf16; a.B = c.B; a.Hq = c.Hq; a.Hkv = c.Hkv; a.T = c.T; a.S = c.S; a.D = D; a.Dv = D; a.scale = scale; a.causal = c.causal; a.causal_offset = c.off; a.chunk_size = c.chunk;
  a.kv_lens = c.lens.empty() ? nullptr : c.lens.data();
  if (c.bias) { a.bias = bias.data(); a.bias_str[0] = c.Hq * c.T * c.S; a.bias_str[1] = c.T * c.S; a.bias_str[2] = c.S; a.bias_str[3] = 1; }
  int64_t qs[3] = {c.Hq * c.T * D, c.T * D, D}, ks[3] = {c.Hkv * c.S * D, c.S * D, D};
  memcpy(a.q_str, qs, sizeof qs); memcpy(a.o_str, qs, sizeof qs); memcpy(a.do_str, qs, sizeof qs); memcpy(a.k_str, ks, sizeof ks); memcpy(a.v_str, ks, sizeof ks);
  if (bf16) { a.q = qb.data(); a.k = kb.data(); a.v = vb.data(); a.o = ob.data(); a.dout = gb.data(); a.dq = dqb.data(); a.dk = dkb.data(); a.dv = dvb.data(); }
  else { a.q = q.data(); a.k = k.data(); a.v = v.data(); a.o = of.data(); a.dout = dO.data(); a.dq = dqf.data(); a.dk = dkf.data(); a.dv = dvf.data(); }
  a.lse = lsef.data(); a.o_in = a.o; a.lse_in = lsef.data(); a.delta = delta.data(); a.dq_acc = dqacc.data();
  if (tc) {
    size_t smem = 2 * (64 + 128) * (D + 8);
    launch(c.B * c.Hq, (c.T + 63) / 64, 128, smem, [&] { if (D == 64) fa_tc_fwd<64>(a); else fa_tc_fwd<128>(a); });
  } else {
    size_t smem = 4 * (16 * D + 32 * (D + 1) + 32 * (D + 1));
    launch(c.B * c.Hq, (c.T + 15) / 16, 128, smem, [&] { if (bf16) fa_ref_fwd<__nv_bfloat16>(a); else fa_ref_fwd<float>(a); });
  }
  std::vector<float> og(nq);
  for (int64_t i = 0; i < nq; i++) og[i] = bf16 ? __bfloat162float(ob[i]) : of[i];
  // backward
  int64_t rows = c.B * c.Hq * c.T;
  if (tc) {
    launch((rows * 32 + 255) / 256, 1, 256, 0, [&] { fa_tc_delta(a); });
    size_t smem = 2 * ((2 * 64 + 2 * 64) * (D + 8) + 64 * 72) + 4 * 2 * 64 + 8 * 64;
    launch(c.B * c.Hkv, (c.S + 63) / 64, 128, smem, [&] { if (D == 64) fa_tc_bwd<64>(a); else fa_tc_bwd<128>(a); });
    launch((nq + 255) / 256, 1, 256, 0, [&] { fa_tc_dq_convert(a, nq); });
  } else {
    if (bf16) launch((rows * 32 + 255) / 256, 1, 256, 0, [&] { fa_ref_delta<__nv_bfloat16>(a); });
    else launch((rows * 32 + 255) / 256, 1, 256, 0, [&] { fa_ref_delta<float>(a); });
    size_t smem = 4 * (16 * 2 * D + 32 * (D + 1) * 2);
    launch(c.B * c.Hq, (c.T + 15) / 16, 128, smem, [&] { if (bf16) fa_ref_dq<__nv_bfloat16>(a); else fa_ref_dq<float>(a); });
    smem = 4 * (16 * 2 * D + 32 * (D + 1) * 2 + 64);
    launch(c.B * c.Hkv, (c.S + 15) / 16, 128, smem, [&] { if (bf16) fa_ref_dkv<__nv_bfloat16>(a); else fa_ref_dkv<float>(a); });
  }
  std::vector<float> dqg(nq), dkg(nk), dvg(nk);
  for (int64_t i = 0; i < nq; i++) dqg[i] = bf16 ? __bfloat162float(dqb[i]) : dqf[i];
  for (int64_t i = 0; i < nk; i++) { dkg[i] = bf16 ? __bfloat162float(dkb[i]) : dkf[i]; dvg[i] = bf16 ? __bfloat162float(dvb[i]) : dvf[i]; }
  printf("%s [%s %s]\n", c.name, tc ? "tc" : "ref", bf16 ? "bf16" : "f32");
  double tol = bf16 ? 2e-2 : 1e-5;
  bool ok = cmp("o", og, o, tol);
  std::vector<double> l2; std::vector<float> lg;
  for (size_t i = 0; i < lse.size(); i++) { if (std::isinf(lse[i])) { if (!std::isinf(lsef[i])) { printf("  lse %zu should be -inf, got %g  <-- FAIL\n", i, lsef[i]); ok = false; } continue; } l2.push_back(lse[i]); lg.push_back(lsef[i]); }
  ok &= cmp("lse", lg, l2, 1e-4);
  ok &= cmp("dq", dqg, dq, tol); ok &= cmp("dk", dkg, dk, tol); ok &= cmp("dv", dvg, dv, tol);
  return ok;
}

/* Usage: attention_emulated [all]. The default set covers every kernel and mask kind once; "all" adds the
 * reference kernels on every case. */
int main(int argc, char **argv) {
  bool full = argc > 1 && !strcmp(argv[1], "all");
  std::vector<Case> cases = {
    {"full GQA T70 S93 D64", 2, 4, 2, 70, 93, 64, false, 0, 0, {}, false},
    {"causal T130 D64", 1, 2, 1, 130, 130, 64, true, 0, 0, {}, false},
    {"causal D128 T70", 1, 2, 2, 70, 70, 128, true, 0, 0, {}, false},
    {"causal offset 67 T33 S100", 2, 2, 1, 33, 100, 64, true, 67, 0, {}, false},
    {"causal offset -5", 1, 2, 2, 40, 40, 64, true, -5, 0, {}, false},
    {"kv_lens with empty row", 2, 2, 1, 20, 30, 64, true, 10, 0, {0, 23}, false},
    {"chunk 16", 1, 2, 1, 70, 70, 64, false, 0, 16, {}, false},
    {"chunk 24 causal lens", 2, 2, 2, 70, 70, 64, true, 0, 24, {70, 55}, false},
  };
  bool all = true;
  for (size_t i = 0; i < cases.size(); i++) {
    all &= run(cases[i], true, true);
    if (full || i == 0 || i == 5) all &= run(cases[i], false, true);
    if (full || i == 3 || i == 7) all &= run(cases[i], false, false);
  }
  Case bc = {"bias causal", 2, 2, 1, 45, 45, 64, true, 0, 0, {}, true};
  all &= run(bc, false, false);
  all &= run(bc, false, true);
  printf(all ? "ALL OK\n" : "SOME FAILED\n");
  return all ? 0 : 1;
}
