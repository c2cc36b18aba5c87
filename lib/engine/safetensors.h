/* Hugging Face safetensors files, read and written, and the plain tensor list the engine's file
 * formats share.
 *
 * A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor
 * (dtype, shape, data_offsets relative to the data region, optional "__metadata__" of strings),
 * then the tensor bytes.  The reader maps the file and checks all of it before trusting a single
 * offset, so a truncated or hostile file gets an error that names the file and the fault, never
 * a crash.  The writer lays the file out as the Python library does (tensors by dtype size, then
 * name; "__metadata__" first; header padded with spaces to a multiple of 8) and writes it
 * atomically.
 *
 * Shapes are row-major, slowest dimension first, as in PyTorch: a Linear weight is (out, in).
 * GGUF readers and writers (gguf.h) convert to and from GGUF's fastest-first order, so a tensor
 * has the same shape whichever file it came from. */
#ifndef LLM_ENGINE_SAFETENSORS_H
#define LLM_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Element types the engine loads; everything is converted to float32 on load. */
enum llm_dtype {
	LLM_DTYPE_F32 = 0,
	LLM_DTYPE_F16 = 1,
	LLM_DTYPE_BF16 = 2,
};

#define LLM_TENSOR_MAX_DIMS 4

/* A named tensor somewhere in memory: inside a mapped file after reading, or the caller's
 * parameters before writing.  data may be unaligned when it points into a file. */
struct llm_tensor_ref {
	const char *name;
	enum llm_dtype dtype;
	int ndim; /* 0 (a scalar) to LLM_TENSOR_MAX_DIMS */
	int64_t shape[LLM_TENSOR_MAX_DIMS];
	const void *data;
	size_t nbytes;
};

/* A string pair of "__metadata__". */
struct llm_kv_str {
	const char *key;
	const char *val;
};

/* An open safetensors file.  The fields are read-only; tensors are in file order and point into
 * the mapping, so they live until llm_safetensors_close(). */
struct llm_safetensors {
	char *path;
	struct llm_tensor_ref *tensors;
	size_t n_tensors;
	struct llm_kv_str *meta;
	size_t n_meta;
	void *map_; /* private: the mapping and the strings of the header */
	size_t map_len_;
	void *json_;
};

/* The most header bytes a reader accepts, as in the Python library. */
#define LLM_SAFETENSORS_HEADER_MAX (100u * 1000 * 1000)

const char *llm_dtype_name(enum llm_dtype t);
size_t llm_dtype_size(enum llm_dtype t);

/* Half-precision conversions.  f32 to f16 rounds to nearest even and overflows to infinity. */
float llm_f16_to_f32(uint16_t h);
uint16_t llm_f32_to_f16(float f);
float llm_bf16_to_f32(uint16_t h);

/* The number of elements of a shape, or -1 when it overflows or a dimension is negative. */
int64_t llm_shape_numel(int ndim, const int64_t *shape);

/* Format a shape as "[2, 3]" into out. */
void llm_shape_format(int ndim, const int64_t *shape, char *out, size_t outsz);

/* Convert t to float32 into dst, which holds the product of shape.  When t's shape is not
 * exactly (ndim, shape) this fails with LLM_ERR_CHECK naming the tensor and both shapes; file
 * goes into the diagnostic. */
enum llm_err llm_tensor_to_f32(const struct llm_tensor_ref *t, float *dst, int ndim,
			       const int64_t *shape, const char *file, struct llm_diag *diag);

/* Map and validate path.  On success *out is an open file for llm_safetensors_close(). */
enum llm_err llm_safetensors_open(struct llm_safetensors **out, const char *path,
				  struct llm_diag *diag);
void llm_safetensors_close(struct llm_safetensors *st);

/* The tensor called name, or NULL. */
const struct llm_tensor_ref *llm_safetensors_find(const struct llm_safetensors *st,
						  const char *name);
/* The "__metadata__" value for key, or NULL. */
const char *llm_safetensors_meta(const struct llm_safetensors *st, const char *key);

/* Read the tensor called name as float32 into dst, checking its shape: LLM_ERR_NOT_FOUND when
 * there is no such tensor, LLM_ERR_CHECK when its shape differs. */
enum llm_err llm_safetensors_read_f32(const struct llm_safetensors *st, const char *name,
				      float *dst, int ndim, const int64_t *shape,
				      struct llm_diag *diag);

/* Write tensors (any llm_dtype; nbytes is ignored and computed from the shape) and metadata to
 * path atomically.  Names must be unique, non-empty and not "__metadata__". */
enum llm_err llm_safetensors_write(const char *path, const struct llm_tensor_ref *tensors,
				   size_t n_tensors, const struct llm_kv_str *meta, size_t n_meta,
				   struct llm_diag *diag);

#endif
