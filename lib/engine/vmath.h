/* Elementwise math for the engine's loops, in plain arithmetic the compiler vectorizes.
 *
 * libm's expf is a call per element, so a loop over it stays scalar: a training step spent a
 * fifth of its time in exp (the softmaxes, the cross-entropy, SiLU) that way. */
#ifndef LLM_ENGINE_VMATH_H
#define LLM_ENGINE_VMATH_H

#include <stdint.h>

/* e^x in float32 within 1e-7 relative error for x in [-87, 88]; below, the result is about
 * 1.6e-38, above about 1.7e38 (so 1 / (1 + e^x) still goes to 0).  x = n ln2 + r with
 * |r| <= ln2 / 2 (ln2 in two parts, after Cody and Waite), e^r by Cephes' degree-6 polynomial,
 * 2^n put into the exponent bits.  The clamps are integer minimums on the bit patterns
 * (unsigned for the negative bound, signed for the positive), which compilers vectorize where
 * a floating-point comparison would be a branch. */
static inline float llm_expf(float x)
{
	union {
		float f;
		uint32_t u;
		int32_t i;
	} v = {.f = x};
	static const union {
		float f;
		uint32_t u;
		int32_t i;
	} lo = {.f = -87.0f}, hi = {.f = 88.0f};
	v.u = v.u < lo.u ? v.u : lo.u;
	v.i = v.i < hi.i ? v.i : hi.i;
	x = v.f;
	/* round to nearest by adding and taking away 1.5 · 2^23: no call to rintf */
	float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	float r = x - n * 0.693359375f + n * 2.12194440e-4f;
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	float y = p * r * r + r + 1.0f;
	union {
		uint32_t u;
		float f;
	} two_n = {.u = (uint32_t)((int32_t)n + 127) << 23};
	return y * two_n.f;
}

#endif
