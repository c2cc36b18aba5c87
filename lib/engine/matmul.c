/* Matrix products: OpenBLAS's cblas_sgemm when it can be opened, else a portable blocked kernel.
 *
 * OpenBLAS is opened with dlopen at the first product instead of being linked: linked, its
 * constructor starts a thread per core in every program of the toolkit (llm-eval, llm-prep,
 * llm-monitor too, which never multiply a matrix), and each of those threads spins on
 * sched_yield for its first tenth of a second, CPU time taken from the program on every run.
 * The engine keeps BLAS to one thread anyway (its threads are OpenMP's).
 *
 * The portable kernel is the usual GotoBLAS structure: op(B) is packed into panels of NR
 * columns, op(A) into panels of MR rows, both k-major, and a micro-kernel keeps an MR×NR block of
 * C in registers while it walks k.  Its inner step is "acc[i] += a[i] * b" over a vector of NR
 * floats, a product with no reduction in it, so it vectorizes without -ffast-math: no special
 * flags are needed for this file and results do not depend on reassociation.  The vectors are
 * GCC vector types, so the compiler cannot fail to vectorize them; on x86-64 the blocked routine
 * is compiled three times (AVX-512, AVX2+FMA, baseline SSE2) and the loader picks the one the
 * CPU runs (target_clones), so a distributed binary is fast without -march=native. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef HAVE_OPENBLAS
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#endif

#include "engine/matmul.h"

/* Products smaller than this many multiply-adds run on one thread: below it the cost of
 * waking threads is larger than the work. */
#define PARALLEL_MIN_MACS (1 << 18)

/* Kernels compiled for several instruction sets, the loader picking the one the CPU runs. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define MULTI_TARGET __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MULTI_TARGET
#endif

static void scale_c(int M, int N, float beta, float *C, int ldc)
{
	if (beta == 1.0f)
		return;
	for (int i = 0; i < M; i++) {
		float *c = C + (size_t)i * ldc;
		if (beta == 0.0f)
			memset(c, 0, (size_t)N * sizeof *c);
		else
			for (int j = 0; j < N; j++)
				c[j] *= beta;
	}
}

/* Register block (MR rows × NR columns of C), and cache blocks: a KC×NR panel of B (16 KiB)
 * stays in L1 while the micro-kernel runs, the MC×KC block of A (96 KiB) in L2. */
#define MR 6
#define NR 16
#define KC 256
#define MC 96
#define NC 512

#if defined(__GNUC__)
typedef float vec16 __attribute__((vector_size(NR * sizeof(float))));
#endif

static inline float op_get(const float *X, int ld, bool t, int r, int c)
{
	return t ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

/* Rows i0..i0+mc of op(A), columns p0..p0+kc, into MR-row panels, zero-padded. */
static inline void pack_a(bool ta, const float *A, int lda, int i0, int mc, int p0, int kc,
			  float *restrict ap)
{
	for (int ir = 0; ir < mc; ir += MR) {
		for (int k = 0; k < kc; k++) {
			for (int i = 0; i < MR; i++)
				ap[k * MR + i] =
				    ir + i < mc ? op_get(A, lda, ta, i0 + ir + i, p0 + k) : 0.0f;
		}
		ap += (size_t)kc * MR;
	}
}

/* Rows p0..p0+kc of op(B), columns j0..j0+nc, into NR-column panels, zero-padded.  The loop
 * order follows the storage so the reads are sequential. */
static inline void pack_b(bool tb, const float *B, int ldb, int p0, int kc, int j0, int nc,
			  float *restrict bp)
{
	for (int jr = 0; jr < nc; jr += NR) {
		int nr = nc - jr < NR ? nc - jr : NR;
		if (tb) {
			for (int j = 0; j < NR; j++) {
				const float *b = B + (size_t)(j0 + jr + j) * ldb + p0;
				for (int k = 0; k < kc; k++)
					bp[k * NR + j] = j < nr ? b[k] : 0.0f;
			}
		} else {
			for (int k = 0; k < kc; k++) {
				const float *b = B + (size_t)(p0 + k) * ldb + j0 + jr;
				for (int j = 0; j < NR; j++)
					bp[k * NR + j] = j < nr ? b[j] : 0.0f;
			}
		}
		bp += (size_t)kc * NR;
	}
}

/* C[mr×nr] += alpha · (MR-row panel) · (NR-column panel) over kc. */
static inline __attribute__((always_inline)) void micro_kernel(int kc, const float *restrict ap,
							       const float *restrict bp,
							       float alpha, float *restrict C,
							       int ldc, int mr, int nr)
{
#if defined(__GNUC__)
	vec16 acc[MR];
	for (int i = 0; i < MR; i++)
		acc[i] = (vec16){0};
	for (int k = 0; k < kc; k++) {
		vec16 b;
		memcpy(&b, bp + (size_t)k * NR, sizeof b);
#pragma GCC unroll 6
		for (int i = 0; i < MR; i++)
			acc[i] += ap[k * MR + i] * b;
	}
	float out[MR][NR];
	memcpy(out, acc, sizeof out);
#else
	float out[MR][NR] = {{0}};
	for (int k = 0; k < kc; k++)
		for (int i = 0; i < MR; i++)
			for (int j = 0; j < NR; j++)
				out[i][j] += ap[k * MR + i] * bp[k * NR + j];
#endif
	for (int i = 0; i < mr; i++) {
		float *c = C + (size_t)i * ldc;
		for (int j = 0; j < nr; j++)
			c[j] += alpha * out[i][j];
	}
}

MULTI_TARGET
static void gemm_blocked(bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
			 int lda, const float *B, int ldb, float *C, int ldc, float *ap, float *bp)
{
	for (int jc = 0; jc < N; jc += NC) {
		int nc = N - jc < NC ? N - jc : NC;
		for (int pc = 0; pc < K; pc += KC) {
			int kc = K - pc < KC ? K - pc : KC;
			pack_b(tb, B, ldb, pc, kc, jc, nc, bp);
			for (int ic = 0; ic < M; ic += MC) {
				int mc = M - ic < MC ? M - ic : MC;
				pack_a(ta, A, lda, ic, mc, pc, kc, ap);
				for (int jr = 0; jr < nc; jr += NR) {
					int nr = nc - jr < NR ? nc - jr : NR;
					const float *b = bp + (size_t)jr * kc;
					for (int ir = 0; ir < mc; ir += MR) {
						int mr = mc - ir < MR ? mc - ir : MR;
						micro_kernel(kc, ap + (size_t)ir * kc, b, alpha,
							     C + (size_t)(ic + ir) * ldc + jc + jr,
							     ldc, mr, nr);
					}
				}
			}
		}
	}
}

/* Used only when the packing buffers cannot be allocated, so a product never fails. */
static void gemm_naive(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
		       const float *B, int ldb, float *C, int ldc)
{
	for (int i = 0; i < M; i++)
		for (int p = 0; p < K; p++) {
			float a = alpha * op_get(A, lda, ta, i, p);
			for (int j = 0; j < N; j++)
				C[(size_t)i * ldc + j] += a * op_get(B, ldb, tb, p, j);
		}
}

static void gemm_portable(bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
			  int lda, const float *B, int ldb, float *C, int ldc)
{
	size_t a_floats = (size_t)MC * KC;
	size_t b_floats = (size_t)KC * ((N < NC ? N : NC) + NR);
	float *buf = aligned_alloc(64, (a_floats + b_floats) * sizeof(float));
	if (!buf) {
		gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, C, ldc);
		return;
	}
	gemm_blocked(ta, tb, M, N, K, alpha, A, lda, B, ldb, C, ldc, buf, buf + a_floats);
	free(buf);
}

#ifdef HAVE_OPENBLAS
typedef __typeof__(cblas_sgemm) sgemm_fn;
static sgemm_fn *blas_sgemm; /* NULL when OpenBLAS could not be opened */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_open(void)
{
	void *h = dlopen(LLM_OPENBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return;
	void *sgemm = dlsym(h, "cblas_sgemm"), *set_threads = dlsym(h, "openblas_set_num_threads");
	if (!sgemm || !set_threads) {
		dlclose(h);
		return;
	}
	/* One BLAS thread under each of ours, so the thread count stays OpenMP's. */
	void (*set)(int);
	memcpy(&set, &set_threads, sizeof set);
	set(1);
	memcpy(&blas_sgemm, &sgemm, sizeof blas_sgemm);
}

static sgemm_fn *blas(void)
{
	pthread_once(&blas_once, blas_open);
	return blas_sgemm;
}
#endif

void llm_matmul_serial(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
		       const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
#ifdef HAVE_OPENBLAS
	sgemm_fn *sgemm = blas();
	if (sgemm && K > 0) {
		sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
		      M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
#endif
	scale_c(M, N, beta, C, ldc);
	if (K > 0 && alpha != 0.0f)
		gemm_portable(ta, tb, M, N, K, alpha, A, lda, B, ldb, C, ldc);
}

/* --- a few rows times a weight: llm_matmul_nt_small ----------------------------------------- */

/* The fewest multiply-adds worth waking threads for. */
#define SMALL_PARALLEL_MIN (1 << 16)

#if defined(__GNUC__)
typedef float vec8 __attribute__((vector_size(8 * sizeof(float))));

/* Helpers take vectors by pointer: passing them by value changes the ABI between the
 * instruction sets the kernel is compiled for. */
static inline __attribute__((always_inline)) void load8(vec8 *v, const float *p)
{
	memcpy(v, p, sizeof *v);
}

static inline __attribute__((always_inline)) float hsum8(const vec8 *v)
{
	float a[8];
	memcpy(a, v, sizeof a);
	return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}
#endif

/* s[r] = A row r · b for r < na (1 or 2), with u (4 / na) vector accumulators per row over
 * consecutive blocks of 8, so the multiply-adds of one step do not wait on each other.
 * Inlined with constant na and u. */
static inline __attribute__((always_inline)) void dot_rows(int na, int u, int K, const float *A,
							   int lda, const float *b, float s[2])
{
	int j = 0;
#if defined(__GNUC__)
	vec8 acc[2][4];
#pragma GCC unroll 2
	for (int r = 0; r < na; r++)
#pragma GCC unroll 4
		for (int i = 0; i < u; i++)
			acc[r][i] = (vec8){0};
	for (; j + 8 * u <= K; j += 8 * u) {
#pragma GCC unroll 4
		for (int i = 0; i < u; i++) {
			vec8 bv, av;
			load8(&bv, b + j + 8 * i);
#pragma GCC unroll 2
			for (int r = 0; r < na; r++) {
				load8(&av, A + (size_t)r * lda + j + 8 * i);
				acc[r][i] += av * bv;
			}
		}
	}
#pragma GCC unroll 2
	for (int r = 0; r < na; r++) {
		vec8 t = acc[r][0];
#pragma GCC unroll 4
		for (int i = 1; i < u; i++)
			t += acc[r][i];
		s[r] = hsum8(&t);
	}
#else
	for (int r = 0; r < na; r++)
		s[r] = 0.0f;
#endif
	for (; j < K; j++)
		for (int r = 0; r < na; r++)
			s[r] += A[(size_t)r * lda + j] * b[j];
}

static inline void put(float alpha, float beta, float s, float *c)
{
	*c = beta == 0.0f ? alpha * s : alpha * s + beta * *c;
}

/* Columns n0..n1 of C for every row.  B is read one row after the other, each row dotted with
 * every row of A while it is in L1: a single sequential stream is what the hardware prefetcher
 * follows best (reading four rows of B side by side measured at half the bandwidth here). */
MULTI_TARGET
static void nt_small_cols(int M, int n0, int n1, int K, float alpha, const float *A, int lda,
			  const float *B, int ldb, float beta, float *C, int ldc)
{
	float s[2];
	for (int n = n0; n < n1; n++) {
		const float *b = B + (size_t)n * ldb;
		int r = 0;
		for (; r + 2 <= M; r += 2) {
			dot_rows(2, 2, K, A + (size_t)r * lda, lda, b, s);
			put(alpha, beta, s[0], C + (size_t)r * ldc + n);
			put(alpha, beta, s[1], C + (size_t)(r + 1) * ldc + n);
		}
		if (r < M) {
			dot_rows(1, 4, K, A + (size_t)r * lda, lda, b, s);
			put(alpha, beta, s[0], C + (size_t)r * ldc + n);
		}
	}
}

void llm_matmul_nt_small(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
			 int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0 || alpha == 0.0f) {
		scale_c(M, N, beta, C, ldc);
		return;
	}
	int nt = 1;
#ifdef _OPENMP
	if (!omp_in_parallel() && (double)N * K >= SMALL_PARALLEL_MIN)
		nt = omp_get_max_threads();
#endif
	if (nt <= 1) {
		nt_small_cols(M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	/* One block of columns per thread. */
	int chunk = (N + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
	for (int t = 0; t < nt; t++) {
		int s = t * chunk, e = s + chunk < N ? s + chunk : N;
		if (s < e)
			nt_small_cols(M, s, e, K, alpha, A, lda, B, ldb, beta, C, ldc);
	}
}

void llm_matmul(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
		const float *B, int ldb, float beta, float *C, int ldc)
{
	int nt = 1;
#ifdef _OPENMP
	if (!omp_in_parallel())
		nt = omp_get_max_threads();
#endif
	if (nt <= 1 || (double)M * N * K < PARALLEL_MIN_MACS) {
		llm_matmul_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	/* Split the larger of M and N into one block per thread; each block is a product of the
	 * same kind over a slice of A (rows) or of B (columns).  Blocks are multiples of 16 so
	 * the kernels' register blocks stay whole. */
	bool by_rows = M >= N;
	int len = by_rows ? M : N;
	int chunk = ((len + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
	for (int t = 0; t < nt; t++) {
		int s = t * chunk;
		int n = len - s < chunk ? len - s : chunk;
		if (n <= 0)
			continue;
		if (by_rows)
			llm_matmul_serial(ta, tb, n, N, K, alpha, ta ? A + s : A + (size_t)s * lda,
					  lda, B, ldb, beta, C + (size_t)s * ldc, ldc);
		else
			llm_matmul_serial(ta, tb, M, n, K, alpha, A, lda,
					  tb ? B + (size_t)s * ldb : B + s, ldb, beta, C + s, ldc);
	}
}

int llm_threads_max(void)
{
#ifdef _OPENMP
	return omp_get_max_threads();
#else
	return 1;
#endif
}

int llm_thread_id(void)
{
#ifdef _OPENMP
	return omp_get_thread_num();
#else
	return 0;
#endif
}

void llm_thread_share(int n, int *lo, int *hi)
{
	int nt = 1, id = 0;
#ifdef _OPENMP
	nt = omp_get_num_threads();
	id = omp_get_thread_num();
#endif
	*lo = (int)((long)n * id / nt);
	*hi = (int)((long)n * (id + 1) / nt);
}

const char *llm_matmul_backend(void)
{
#ifdef HAVE_OPENBLAS
	if (blas())
		return "openblas";
#endif
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		return "portable-avx512";
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return "portable-avx2";
	return "portable-generic";
#else
	return "portable-generic";
#endif
}
