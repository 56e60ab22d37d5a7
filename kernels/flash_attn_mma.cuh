/* Tensor-core building blocks for the bf16 attention kernels (sm_80+): ldmatrix loads of 8x8 bf16 tiles from
 * shared memory, the m16n8k16 bf16 MMA with f32 accumulators, and 16-byte global -> shared tile copies. */
#ifndef VOX_KERNELS_FLASH_ATTN_MMA_CUH
#define VOX_KERNELS_FLASH_ATTN_MMA_CUH

#include "flash_attn_common.cuh"

/* Rows of a shared-memory tile are padded by 8 elements (16 bytes) so that the 8 row addresses of one
 * ldmatrix fall in different banks. */
#define FA_PAD 8

__device__ __forceinline__ uint32_t fa_smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void fa_ldmatrix_x4(uint32_t *r, const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(fa_smem_addr(p)));
}
__device__ __forceinline__ void fa_ldmatrix_x4_trans(uint32_t *r, const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(fa_smem_addr(p)));
}

/* d = a (16x16, row) * b (16x8, col) + d, bf16 inputs, f32 accumulate. */
__device__ __forceinline__ void fa_mma(float *d, const uint32_t *a, const uint32_t *b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t fa_pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&v);
}

/* A fragment (16 rows x 16 k) of a row-major [rows][k] shared tile with pitch `pitch` elements. */
__device__ __forceinline__ void fa_load_a(uint32_t *r, const __nv_bfloat16 *tile, int pitch, int row0, int k0, int lane) {
  fa_ldmatrix_x4(r, tile + (row0 + (lane % 16)) * pitch + k0 + (lane / 16) * 8);
}
/* A fragment (16 rows x 16 k) read from a tile stored transposed, [k][rows]. */
__device__ __forceinline__ void fa_load_a_trans(uint32_t *r, const __nv_bfloat16 *tile, int pitch, int row0, int k0,
                                                int lane) {
  int i = lane / 8;
  fa_ldmatrix_x4_trans(r, tile + (k0 + (lane % 8) + (i / 2) * 8) * pitch + row0 + (i % 2) * 8);
}
/* B fragments of two n-tiles (n0..n0+15) x 16 k from a tile stored [n][k] (keys as rows): r[0..1] for n-tile
 * n0, r[2..3] for n0 + 8. */
__device__ __forceinline__ void fa_load_b_nk(uint32_t *r, const __nv_bfloat16 *tile, int pitch, int n0, int k0, int lane) {
  int i = lane / 8;
  fa_ldmatrix_x4(r, tile + (n0 + (lane % 8) + (i / 2) * 8) * pitch + k0 + (i % 2) * 8);
}
/* The same from a tile stored [k][n] (features as columns), through the transposing load. */
__device__ __forceinline__ void fa_load_b_kn(uint32_t *r, const __nv_bfloat16 *tile, int pitch, int n0, int k0, int lane) {
  int i = lane / 8;
  fa_ldmatrix_x4_trans(r, tile + (k0 + (lane % 8) + (i % 2) * 8) * pitch + n0 + (i / 2) * 8);
}

/* Copies rows [r0, r0 + n) of a bf16 [rows][D] global matrix (row stride `rs`, 16-byte aligned rows) into a
 * shared tile with pitch D + FA_PAD, zero-filling rows at or past `rows`. */
template <int D>
__device__ __forceinline__ void fa_copy_tile(__nv_bfloat16 *dst, const __nv_bfloat16 *src, int64_t rs, int64_t r0,
                                             int n, int64_t rows) {
  constexpr int VEC = D / 8; /* 16-byte vectors per row */
  for (int i = threadIdx.x; i < n * VEC; i += blockDim.x) {
    int r = i / VEC, c = (i % VEC) * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r0 + r < rows) v = *reinterpret_cast<const uint4 *>(src + (r0 + r) * rs + c);
    *reinterpret_cast<uint4 *>(dst + r * (D + FA_PAD) + c) = v;
  }
}

#endif
