/* Emulated ldmatrix (plain and transposing) and mma.sync m16n8k16 bf16 for host runs of the attention kernels:
 * each lane publishes its operands to its warp, and fragments are assembled with the PTX ISA's register layouts. */
#ifndef VOX_TESTS_MMA_EMULATED_H
#define VOX_TESTS_MMA_EMULATED_H
#include <cstdio>
#include <cstdlib>
extern uint32_t emu_A[8][32][4], emu_B[8][32][2];
inline uint32_t emu_ld32(const __nv_bfloat16 *p) { uint32_t r; memcpy(&r, p, 4); return r; }
inline void emu_ldmatrix(uint32_t *r, const void *p, bool trans) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  if ((uintptr_t)p % 16) { fprintf(stderr, "ldmatrix misaligned\n"); abort(); }
  emu_xchg[w][l] = (uint64_t)(uintptr_t)p;
  emu_warp_bar[w]->arrive_and_wait();
  for (int i = 0; i < 4; i++) {
    if (!trans) {
      const __nv_bfloat16 *row = (const __nv_bfloat16 *)(uintptr_t)emu_xchg[w][8 * i + l / 4];
      r[i] = emu_ld32(row + 2 * (l % 4));
    } else {
      const __nv_bfloat16 *r0 = (const __nv_bfloat16 *)(uintptr_t)emu_xchg[w][8 * i + 2 * (l % 4)];
      const __nv_bfloat16 *r1 = (const __nv_bfloat16 *)(uintptr_t)emu_xchg[w][8 * i + 2 * (l % 4) + 1];
      r[i] = (uint32_t)r0[l / 4].v | ((uint32_t)r1[l / 4].v << 16);
    }
  }
  emu_warp_bar[w]->arrive_and_wait();
}
inline void fa_ldmatrix_x4(uint32_t *r, const void *p) { emu_ldmatrix(r, p, false); }
inline void fa_ldmatrix_x4_trans(uint32_t *r, const void *p) { emu_ldmatrix(r, p, true); }
inline float emu_lo(uint32_t v) { __nv_bfloat16 h{(uint16_t)(v & 0xffff)}; return __bfloat162float(h); }
inline float emu_hi(uint32_t v) { __nv_bfloat16 h{(uint16_t)(v >> 16)}; return __bfloat162float(h); }
inline void fa_mma(float *d, const uint32_t *a, const uint32_t *b) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  for (int i = 0; i < 4; i++) emu_A[w][l][i] = a[i];
  emu_B[w][l][0] = b[0]; emu_B[w][l][1] = b[1];
  emu_warp_bar[w]->arrive_and_wait();
  float A[16][16], B[16][8];
  for (int L = 0; L < 32; L++) {
    int g = L / 4, q = L % 4;
    const uint32_t *x = emu_A[w][L], *y = emu_B[w][L];
    A[g][2*q] = emu_lo(x[0]); A[g][2*q+1] = emu_hi(x[0]);
    A[g+8][2*q] = emu_lo(x[1]); A[g+8][2*q+1] = emu_hi(x[1]);
    A[g][2*q+8] = emu_lo(x[2]); A[g][2*q+9] = emu_hi(x[2]);
    A[g+8][2*q+8] = emu_lo(x[3]); A[g+8][2*q+9] = emu_hi(x[3]);
    B[2*q][g] = emu_lo(y[0]); B[2*q+1][g] = emu_hi(y[0]);
    B[2*q+8][g] = emu_lo(y[1]); B[2*q+9][g] = emu_hi(y[1]);
  }
  emu_warp_bar[w]->arrive_and_wait();
  int g = l / 4, q = l % 4;
  for (int c = 0; c < 4; c++) {
    int row = g + 8 * (c >> 1), col = 2 * q + (c & 1);
    float s = 0; for (int k = 0; k < 16; k++) s += A[row][k] * B[k][col];
    d[c] += s;
  }
}
#endif
