/* Inline float erf and exp, branch-free so that the compiler vectorises them (glibc's erff/expf/exp are calls, one
 * element at a time): the GELU and CTC kernels spent a quarter of an encoder's training step in those calls.
 * Accuracy is stated per function and tested (test_elementwise). */
#ifndef VOX_BACKEND_CPU_VMATH_H
#define VOX_BACKEND_CPU_VMATH_H

#include <stdint.h>
#include <string.h>

/* exp(x) for x <= 0 (the argument of a Gaussian), within 2 ulp of expf; below -87.3 it returns exp(-87.3) ~ 1.2e-38
 * instead of a denormal. Cody-Waite reduction x = n ln2 + r, a degree-6 polynomial for e^r, then 2^n from bits. */
static inline float vox_cpu_exp_nonpos(float x) {
  x = x < -87.3365448f ? -87.3365448f : x;
  x = x > 0.0f ? 0.0f : x;
  float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/* erf(x) within 3.3e-7 of erf, absolute and relative (normal floats): a rational approximation on [-4, 4] (odd
 * numerator of degree 13, even denominator of degree 8; the one Eigen and XLA use), +-1 outside, where float erf is
 * +-1 already. */
static inline float vox_cpu_erf(float x) {
  x = x > 4.0f ? 4.0f : x;
  x = x < -4.0f ? -4.0f : x;
  float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return x * p / q;
}

#endif
