/* Matrix products for the engine: every layer's forward and backward is a few of these.
 *
 * One entry point with BLAS's row-major sgemm semantics, C = alpha op(A) op(B) + beta C, so the
 * shapes the layers need are all spelled the same way:
 *     y = x Wᵀ        (linear forward, W stored (out, in) as PyTorch does)   ta=0 tb=1
 *     dx = dy W       (linear backward to the input)                          ta=0 tb=0
 *     dW += dyᵀ x     (linear backward to the weight)                         ta=1 tb=0
 * With OpenBLAS (configure finds it; HAVE_OPENBLAS; opened at the first product, and only
 * then) each product goes to cblas_sgemm; otherwise, or when it cannot be opened, to a
 * portable blocked kernel.  Either way the threads are OpenMP's: a product is split into
 * row or column blocks, one per thread, and BLAS itself is kept to one thread, so the engine's
 * thread count is omp_set_num_threads()'s and nothing oversubscribes the cores.  Called inside a
 * parallel region, a product runs on the calling thread alone. */
#ifndef LLM_ENGINE_MATMUL_H
#define LLM_ENGINE_MATMUL_H

#include <stdbool.h>

/* C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C, row-major with leading dimensions
 * lda, ldb, ldc.  op(A) is A when ta is false and Aᵀ when true (A is then stored K×M); the same
 * for B.  beta = 0 overwrites C without reading it (NaN in C does not propagate). */
void llm_matmul(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
		const float *B, int ldb, float beta, float *C, int ldc);

/* The same on the calling thread only, whatever the thread settings. */
void llm_matmul_serial(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
		       const float *B, int ldb, float beta, float *C, int ldc);

/* llm_matmul(false, true, M, N, K, ...) for a few rows of A: C[M×N] = alpha · A[M×K] · B[N×K]ᵀ
 * + beta · C, with the same leading dimensions and the same beta = 0 rule.  This is a decode
 * step's shape (A one row per sequence, B a weight stored (out, in)), where the work is reading
 * B: each row of B is read once, from memory, for all rows of A, with wide loads and several
 * rows of B per pass, and nothing is packed.  Any M gives the right result; above
 * LLM_MATMUL_SMALL_M rows llm_matmul is faster.  The columns are split among OpenMP's threads
 * as llm_matmul splits them (on the calling thread alone inside a parallel region).  The sums
 * are taken in another order than sgemm's, so results differ from llm_matmul's by rounding. */
#define LLM_MATMUL_SMALL_M 8
void llm_matmul_nt_small(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
			 int ldb, float beta, float *C, int ldc);

/* The engine's threads (OpenMP's, or 1 without it): how many a parallel region may use, and
 * the calling thread's number within one. */
int llm_threads_max(void);
int llm_thread_id(void);
/* Inside a parallel region: this thread's share [*lo, *hi) of n items, so that threads adding
 * into shared rows each own whole columns. */
void llm_thread_share(int n, int *lo, int *hi);

/* "openblas" or "portable", and for the portable kernel the instruction set chosen at load
 * time ("portable-avx512", "portable-avx2", "portable-generic"); for logs and benchmarks. */
const char *llm_matmul_backend(void);

#endif
