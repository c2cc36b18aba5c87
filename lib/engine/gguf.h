/* GGUF v3 files (llama.cpp's format), read and written, with the pieces a llama model and a
 * LoRA adapter need to load in llama.cpp and Ollama.
 *
 * Layout: "GGUF", u32 version, u64 tensor count, u64 metadata count, typed key/values, tensor
 * infos (name, dims fastest-varying first, type, offset), padding to general.alignment (32 by
 * default), then the data, each tensor aligned.  The reader maps the file and checks every
 * length and offset against the file before using it; it loads F32, F16 and BF16 tensors and
 * refuses the quantised types by number.  Tensor shapes here are row-major, slowest first, as in
 * safetensors.h: a GGUF tensor with ne = [in, out] has shape (out, in).
 *
 * The llama helpers map Hugging Face tensor names to GGUF's and permute the rows of the Q and K
 * projections between Hugging Face's rotate-half RoPE layout and GGUF's interleaved pairs, as
 * llama.cpp's convert_hf_to_gguf.py does. */
#ifndef LLM_ENGINE_GGUF_H
#define LLM_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "engine/safetensors.h"

/* Metadata value types; the numbers are the file's. */
enum llm_gguf_type {
	LLM_GGUF_UINT8 = 0,
	LLM_GGUF_INT8 = 1,
	LLM_GGUF_UINT16 = 2,
	LLM_GGUF_INT16 = 3,
	LLM_GGUF_UINT32 = 4,
	LLM_GGUF_INT32 = 5,
	LLM_GGUF_FLOAT32 = 6,
	LLM_GGUF_BOOL = 7,
	LLM_GGUF_STRING = 8,
	LLM_GGUF_ARRAY = 9,
	LLM_GGUF_UINT64 = 10,
	LLM_GGUF_INT64 = 11,
	LLM_GGUF_FLOAT64 = 12,
};

/* Tensor types (ggml's numbering) that load. */
#define LLM_GGML_TYPE_F32  0
#define LLM_GGML_TYPE_F16  1
#define LLM_GGML_TYPE_BF16 30

#define LLM_GGUF_DEFAULT_ALIGNMENT 32

/* A string from the file, copied and NUL-terminated; len excludes the NUL (a GGUF string may
 * hold NUL bytes). */
struct llm_gguf_str {
	char *s;
	size_t len;
};

/* One metadata key/value.  Scalars: integers in u (unsigned, bool) or i (signed), floats in f,
 * a string in str.  Arrays: arr_n items of arr_type in arr, numbers in host order as their
 * C type (uint8_t ... double, bool as uint8_t), strings as struct llm_gguf_str. */
struct llm_gguf_kv {
	char *key;
	enum llm_gguf_type type;
	uint64_t u;
	int64_t i;
	double f;
	struct llm_gguf_str str;
	enum llm_gguf_type arr_type;
	uint64_t arr_n;
	void *arr;
};

/* An open GGUF file; read-only fields.  tensors point into the mapping and are in file order;
 * ggml_types[i] is tensors[i]'s type number. */
struct llm_gguf {
	char *path;
	uint32_t version;
	uint32_t alignment;
	struct llm_gguf_kv *kv;
	size_t n_kv;
	struct llm_tensor_ref *tensors;
	uint32_t *ggml_types;
	size_t n_tensors;
	void *map_; /* private */
	size_t map_len_;
};

const char *llm_gguf_type_name(enum llm_gguf_type t);

enum llm_err llm_gguf_open(struct llm_gguf **out, const char *path, struct llm_diag *diag);
void llm_gguf_close(struct llm_gguf *g);

/* The key/value called key, or NULL. */
const struct llm_gguf_kv *llm_gguf_find_kv(const struct llm_gguf *g, const char *key);
const struct llm_tensor_ref *llm_gguf_find_tensor(const struct llm_gguf *g, const char *name);

/* Typed getters: LLM_ERR_MISSING when key is absent, LLM_ERR_TYPE when its value has another
 * type, LLM_ERR_RANGE when an integer does not fit.  get_u32 takes any integer type; get_f32
 * takes FLOAT32 or FLOAT64. */
enum llm_err llm_gguf_get_u32(const struct llm_gguf *g, const char *key, uint32_t *out,
			      struct llm_diag *diag);
enum llm_err llm_gguf_get_f32(const struct llm_gguf *g, const char *key, float *out,
			      struct llm_diag *diag);
enum llm_err llm_gguf_get_str(const struct llm_gguf *g, const char *key, const char **out,
			      struct llm_diag *diag);

/* Read a tensor as float32 with an expected shape, like llm_safetensors_read_f32(). */
enum llm_err llm_gguf_read_f32(const struct llm_gguf *g, const char *name, float *dst, int ndim,
			       const int64_t *shape, struct llm_diag *diag);

/* --- writing ---------------------------------------------------------------------------- */

struct llm_gguf_writer;

enum llm_err llm_gguf_writer_new(struct llm_gguf_writer **out, struct llm_diag *diag);
void llm_gguf_writer_free(struct llm_gguf_writer *w);

/* Metadata, in the order added.  A key added twice fails with LLM_ERR_USAGE. */
enum llm_err llm_gguf_add_str(struct llm_gguf_writer *w, const char *key, const char *val);
enum llm_err llm_gguf_add_u32(struct llm_gguf_writer *w, const char *key, uint32_t val);
enum llm_err llm_gguf_add_i32(struct llm_gguf_writer *w, const char *key, int32_t val);
enum llm_err llm_gguf_add_f32(struct llm_gguf_writer *w, const char *key, float val);
enum llm_err llm_gguf_add_bool(struct llm_gguf_writer *w, const char *key, bool val);
enum llm_err llm_gguf_add_arr_str(struct llm_gguf_writer *w, const char *key,
				  const char *const *vals, size_t n);
enum llm_err llm_gguf_add_arr_i32(struct llm_gguf_writer *w, const char *key, const int32_t *vals,
				  size_t n);
enum llm_err llm_gguf_add_arr_f32(struct llm_gguf_writer *w, const char *key, const float *vals,
				  size_t n);

/* A float32 tensor of a row-major shape, stored as type (LLM_GGML_TYPE_F32 or _F16).  data is
 * borrowed: it must stay valid until llm_gguf_writer_write().  Names are at most 63 bytes, as
 * llama.cpp requires. */
enum llm_err llm_gguf_add_tensor(struct llm_gguf_writer *w, const char *name, int ndim,
				 const int64_t *shape, const float *data, uint32_t type);

/* Write everything to path atomically.  The writer can be freed afterwards. */
enum llm_err llm_gguf_writer_write(struct llm_gguf_writer *w, const char *path,
				   struct llm_diag *diag);

/* --- llama architecture ----------------------------------------------------------------- */

/* The hyperparameters llama.cpp reads from a llama GGUF. */
struct llm_gguf_llama_hparams {
	const char *name; /* general.name; NULL leaves it out */
	uint32_t vocab_size;
	uint32_t context_length;
	uint32_t embedding_length;
	uint32_t block_count;
	uint32_t feed_forward_length;
	uint32_t head_count;
	uint32_t head_count_kv;
	float rms_norm_eps;
	float rope_freq_base;
	uint32_t file_type; /* 0 all F32, 1 mostly F16 */
};

/* Add general.architecture "llama" and the llama.* keys. */
enum llm_err llm_gguf_llama_add_hparams(struct llm_gguf_writer *w,
					const struct llm_gguf_llama_hparams *hp);

/* The GGUF name of a Hugging Face llama tensor ("model.layers.3.mlp.up_proj.weight" gives
 * "blk.3.ffn_up.weight").  LLM_ERR_NOT_FOUND when it has none, LLM_ERR_TOO_BIG when out is
 * short. */
enum llm_err llm_gguf_llama_name(const char *hf_name, char *out, size_t outsz);
/* The inverse: the Hugging Face name of a GGUF llama tensor. */
enum llm_err llm_gguf_llama_hf_name(const char *gguf_name, char *out, size_t outsz);

/* The number of heads whose Q or K rows hf_name holds (head_count for q_proj, head_count_kv
 * for k_proj), or 0 when its rows are not permuted between the layouts. */
uint32_t llm_gguf_llama_permute_heads(const char *hf_name, uint32_t head_count,
				      uint32_t head_count_kv);

/* Reorder the rows of a (n_head * head_dim, cols) matrix from Hugging Face's rotate-half layout
 * to GGUF's interleaved pairs (permute) or back (unpermute).  dst and src must not overlap.
 * LLM_ERR_USAGE when rows is not a multiple of 2 * n_head. */
enum llm_err llm_gguf_llama_permute(float *dst, const float *src, uint32_t n_head, size_t rows,
				    size_t cols);
enum llm_err llm_gguf_llama_unpermute(float *dst, const float *src, uint32_t n_head, size_t rows,
				      size_t cols);

/* Add a tensor by its Hugging Face name: renamed, and permuted (into a copy the writer owns)
 * when it is a Q or K projection. */
enum llm_err llm_gguf_llama_add_hf_tensor(struct llm_gguf_writer *w, const char *hf_name, int ndim,
					  const int64_t *shape, const float *data, uint32_t type,
					  uint32_t head_count, uint32_t head_count_kv,
					  struct llm_diag *diag);

/* Read the tensor the model calls hf_name from a llama GGUF as float32, un-permuting Q and K:
 * LLM_ERR_NOT_FOUND when it is absent (output.weight is, when tied). */
enum llm_err llm_gguf_llama_read_hf(const struct llm_gguf *g, const char *hf_name, float *dst,
				    int ndim, const int64_t *shape, uint32_t head_count,
				    uint32_t head_count_kv, struct llm_diag *diag);

/* --- LoRA adapters ---------------------------------------------------------------------- */

struct llm_lora_pair; /* peft.h */

/* Write a llama.cpp LoRA adapter: general.type "adapter", adapter.type "lora",
 * adapter.lora.alpha, and for each pair blk.N.<tensor>.weight.lora_a (ne [in, r]) and
 * .lora_b (ne [r, out]), B's rows permuted for Q and K like the base weights. */
enum llm_err llm_gguf_lora_write(const char *path, const struct llm_lora_pair *pairs, size_t n,
				 float alpha, uint32_t head_count, uint32_t head_count_kv,
				 struct llm_diag *diag);

#endif
