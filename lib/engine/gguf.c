#include "config.h"

#include "engine/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic.h"
#include "core/buf.h"
#include "core/mapfile.h"
#include "engine/peft.h"

/* Numbers and tensor data are copied as they are, so the host must be little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF data is little-endian; a big-endian host needs byte swapping"
#endif

#define GGUF_VERSION  3
#define GGUF_MAX_DIMS 4
#define GGUF_NAME_MAX 63 /* ggml's GGML_MAX_NAME (64) less the NUL */

static const char *const value_type_names[] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",	"float32",
    "bool",  "string", "array",	 "uint64", "int64",  "float64",
};

const char *llm_gguf_type_name(enum llm_gguf_type t)
{
	return (unsigned)t < sizeof value_type_names / sizeof *value_type_names
		   ? value_type_names[t]
		   : "unknown";
}

/* Bytes of a scalar value type in the file (and in memory); 0 for string, array, unknown. */
static size_t scalar_size(uint32_t t)
{
	static const unsigned char sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
	return t < sizeof sizes ? sizes[t] : 0;
}

/* ggml's tensor types, for naming the ones that do not load. */
static const char *ggml_type_name(uint32_t t)
{
	static const char *const names[] = {
	    [0] = "F32",     [1] = "F16",      [2] = "Q4_0",   [3] = "Q4_1",	[6] = "Q5_0",
	    [7] = "Q5_1",    [8] = "Q8_0",     [9] = "Q8_1",   [10] = "Q2_K",	[11] = "Q3_K",
	    [12] = "Q4_K",   [13] = "Q5_K",    [14] = "Q6_K",  [15] = "Q8_K",	[16] = "IQ2_XXS",
	    [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S",
	    [22] = "IQ2_S",  [23] = "IQ4_XS",  [24] = "I8",    [25] = "I16",	[26] = "I32",
	    [27] = "I64",    [28] = "F64",     [29] = "IQ1_M", [30] = "BF16",	[34] = "TQ1_0",
	    [35] = "TQ2_0",  [39] = "MXFP4",
	};
	return t < sizeof names / sizeof *names ? names[t] : NULL;
}

/* --- reading ------------------------------------------------------------------------------ */

/* A cursor over the mapping: every read checks the bytes left first. */
struct cur {
	const unsigned char *p;
	size_t n;
	size_t pos;
	const char *path;
	struct llm_diag *d;
};

static enum llm_err rd(struct cur *c, void *dst, size_t k, const char *what, const char *name)
{
	if (c->n - c->pos < k)
		return llm_diag_set(c->d, LLM_ERR_RANGE, c->path, 0,
				    "truncated at byte %zu: %s%s%s%s runs past the end of the file "
				    "(%zu bytes)",
				    c->pos, what, name ? " of '" : "", name ? name : "",
				    name ? "'" : "", c->n);
	memcpy(dst, c->p + c->pos, k);
	c->pos += k;
	return LLM_OK;
}

static enum llm_err rd_str(struct cur *c, struct llm_gguf_str *s, const char *what,
			   const char *name)
{
	uint64_t len;
	enum llm_err e = rd(c, &len, 8, what, name);
	if (e)
		return e;
	if (len > c->n - c->pos)
		return llm_diag_set(c->d, LLM_ERR_RANGE, c->path, 0,
				    "truncated at byte %zu: %s%s%s%s is a string of %" PRIu64
				    " bytes, but only %zu are left",
				    c->pos, what, name ? " of '" : "", name ? name : "",
				    name ? "'" : "", len, c->n - c->pos);
	s->s = malloc((size_t)len + 1);
	if (!s->s)
		return llm_diag_set(c->d, LLM_ERR_NOMEM, c->path, 0, "out of memory");
	memcpy(s->s, c->p + c->pos, (size_t)len);
	s->s[len] = '\0';
	s->len = (size_t)len;
	c->pos += (size_t)len;
	return LLM_OK;
}

static enum llm_err rd_scalar(struct cur *c, uint32_t type, struct llm_gguf_kv *kv)
{
	unsigned char b[8];
	enum llm_err e = rd(c, b, scalar_size(type), "the value", kv->key);
	if (e)
		return e;
	switch (type) {
	case LLM_GGUF_UINT8:
	case LLM_GGUF_BOOL:
		kv->u = b[0];
		break;
	case LLM_GGUF_INT8:
		kv->i = (int8_t)b[0];
		break;
	case LLM_GGUF_UINT16: {
		uint16_t v;
		memcpy(&v, b, 2);
		kv->u = v;
		break;
	}
	case LLM_GGUF_INT16: {
		int16_t v;
		memcpy(&v, b, 2);
		kv->i = v;
		break;
	}
	case LLM_GGUF_UINT32: {
		uint32_t v;
		memcpy(&v, b, 4);
		kv->u = v;
		break;
	}
	case LLM_GGUF_INT32: {
		int32_t v;
		memcpy(&v, b, 4);
		kv->i = v;
		break;
	}
	case LLM_GGUF_FLOAT32: {
		float v;
		memcpy(&v, b, 4);
		kv->f = v;
		break;
	}
	case LLM_GGUF_UINT64:
		memcpy(&kv->u, b, 8);
		break;
	case LLM_GGUF_INT64:
		memcpy(&kv->i, b, 8);
		break;
	case LLM_GGUF_FLOAT64:
		memcpy(&kv->f, b, 8);
		break;
	}
	return LLM_OK;
}

static enum llm_err rd_array(struct cur *c, struct llm_gguf_kv *kv)
{
	uint32_t at;
	uint64_t n;
	enum llm_err e = rd(c, &at, 4, "the array type", kv->key);
	if (!e)
		e = rd(c, &n, 8, "the array length", kv->key);
	if (e)
		return e;
	if (at == LLM_GGUF_ARRAY)
		return llm_diag_set(c->d, LLM_ERR_TYPE, c->path, 0,
				    "'%s' is an array of arrays, which is not supported", kv->key);
	if (at > LLM_GGUF_FLOAT64)
		return llm_diag_set(c->d, LLM_ERR_TYPE, c->path, 0,
				    "'%s' is an array of unknown value type %" PRIu32, kv->key, at);
	/* The smallest item (a string is at least its 8-byte length) bounds the count before
	 * anything is allocated for it. */
	size_t least = at == LLM_GGUF_STRING ? 8 : scalar_size(at);
	if (n > (c->n - c->pos) / least)
		return llm_diag_set(c->d, LLM_ERR_TOO_BIG, c->path, 0,
				    "'%s' claims %" PRIu64 " items of %s, more than the %zu bytes "
				    "left can hold",
				    kv->key, n, llm_gguf_type_name(at), c->n - c->pos);
	kv->arr_type = at;
	kv->arr_n = n;
	if (at == LLM_GGUF_STRING) {
		struct llm_gguf_str *s = calloc((size_t)n + 1, sizeof *s);
		if (!s)
			return llm_diag_set(c->d, LLM_ERR_NOMEM, c->path, 0, "out of memory");
		kv->arr = s;
		for (uint64_t i = 0; i < n; i++)
			if ((e = rd_str(c, &s[i], "an item", kv->key)))
				return e;
		return LLM_OK;
	}
	kv->arr = malloc((size_t)n * least + 1);
	if (!kv->arr)
		return llm_diag_set(c->d, LLM_ERR_NOMEM, c->path, 0, "out of memory");
	return rd(c, kv->arr, (size_t)n * least, "the items", kv->key);
}

static enum llm_err rd_kv(struct cur *c, struct llm_gguf_kv *kv, uint64_t index)
{
	struct llm_gguf_str key = {0};
	char what[64];
	snprintf(what, sizeof what, "the key of metadata entry %" PRIu64, index);
	enum llm_err e = rd_str(c, &key, what, NULL);
	kv->key = key.s;
	if (e)
		return e;
	if (key.len == 0 || strlen(key.s) != key.len)
		return llm_diag_set(c->d, LLM_ERR_CHECK, c->path, 0,
				    "metadata entry %" PRIu64 " has an empty key or one with a NUL",
				    index);
	uint32_t type;
	if ((e = rd(c, &type, 4, "the value type", kv->key)))
		return e;
	if (type > LLM_GGUF_FLOAT64)
		return llm_diag_set(c->d, LLM_ERR_TYPE, c->path, 0,
				    "'%s' has unknown value type %" PRIu32, kv->key, type);
	kv->type = type;
	if (type == LLM_GGUF_STRING)
		return rd_str(c, &kv->str, "the value", kv->key);
	if (type == LLM_GGUF_ARRAY)
		return rd_array(c, kv);
	return rd_scalar(c, type, kv);
}

static enum llm_err rd_tensor_info(struct cur *c, struct llm_gguf *g, size_t i, uint64_t *offset)
{
	struct llm_tensor_ref *t = &g->tensors[i];
	struct llm_gguf_str name = {0};
	char what[64];
	snprintf(what, sizeof what, "the name of tensor %zu", i);
	enum llm_err e = rd_str(c, &name, what, NULL);
	t->name = name.s;
	if (e)
		return e;
	uint32_t nd, type;
	if ((e = rd(c, &nd, 4, "the dimension count", name.s)))
		return e;
	if (nd > GGUF_MAX_DIMS)
		return llm_diag_set(c->d, LLM_ERR_RANGE, c->path, 0,
				    "tensor '%s' has %" PRIu32
				    " dimensions: GGUF allows at most %d",
				    name.s, nd, GGUF_MAX_DIMS);
	t->ndim = (int)nd;
	for (uint32_t j = 0; j < nd; j++) {
		uint64_t ne;
		if ((e = rd(c, &ne, 8, "the dimensions", name.s)))
			return e;
		if (ne > INT64_MAX)
			return llm_diag_set(c->d, LLM_ERR_RANGE, c->path, 0,
					    "tensor '%s' has dimension %" PRIu64, name.s, ne);
		t->shape[nd - 1 - j] = (int64_t)ne; /* GGUF lists the fastest dimension first */
	}
	if ((e = rd(c, &type, 4, "the type", name.s)) ||
	    (e = rd(c, offset, 8, "the offset", name.s)))
		return e;
	g->ggml_types[i] = type;
	if (type == LLM_GGML_TYPE_F32)
		t->dtype = LLM_DTYPE_F32;
	else if (type == LLM_GGML_TYPE_F16)
		t->dtype = LLM_DTYPE_F16;
	else if (type == LLM_GGML_TYPE_BF16)
		t->dtype = LLM_DTYPE_BF16;
	else if (ggml_type_name(type))
		return llm_diag_set(c->d, LLM_ERR_TYPE, c->path, 0,
				    "tensor '%s' has type %" PRIu32 " (%s): only F32, F16 and BF16 "
				    "load",
				    name.s, type, ggml_type_name(type));
	else
		return llm_diag_set(c->d, LLM_ERR_TYPE, c->path, 0,
				    "tensor '%s' has unknown type %" PRIu32, name.s, type);
	int64_t numel = llm_shape_numel(t->ndim, t->shape), nb;
	if (numel < 0 || __builtin_mul_overflow(numel, (int64_t)llm_dtype_size(t->dtype), &nb))
		return llm_diag_set(c->d, LLM_ERR_RANGE, c->path, 0,
				    "tensor '%s': its size overflows 64 bits", name.s);
	t->nbytes = (size_t)nb;
	return LLM_OK;
}

static int by_key(const void *a, const void *b)
{
	return strcmp((*(const struct llm_gguf_kv *const *)a)->key,
		      (*(const struct llm_gguf_kv *const *)b)->key);
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(const struct llm_tensor_ref *const *)a)->name,
		      (*(const struct llm_tensor_ref *const *)b)->name);
}

static int by_data(const void *a, const void *b)
{
	const char *x = (*(const struct llm_tensor_ref *const *)a)->data;
	const char *y = (*(const struct llm_tensor_ref *const *)b)->data;
	return x < y ? -1 : x > y;
}

/* Duplicate keys and names are refused (llama.cpp refuses them too); sorting keeps a hostile
 * count from making this quadratic. */
static enum llm_err check_unique(struct llm_gguf *g, struct llm_diag *d)
{
	size_t n = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
	void **v = malloc((n + 1) * sizeof *v);
	if (!v)
		return llm_diag_set(d, LLM_ERR_NOMEM, g->path, 0, "out of memory");
	enum llm_err e = LLM_OK;
	for (size_t i = 0; i < g->n_kv; i++)
		v[i] = &g->kv[i];
	qsort(v, g->n_kv, sizeof *v, by_key);
	for (size_t i = 1; i < g->n_kv && !e; i++)
		if (by_key(&v[i - 1], &v[i]) == 0)
			e = llm_diag_set(d, LLM_ERR_CHECK, g->path, 0,
					 "metadata key '%s' appears twice",
					 ((struct llm_gguf_kv *)v[i])->key);
	for (size_t i = 0; i < g->n_tensors; i++)
		v[i] = &g->tensors[i];
	qsort(v, g->n_tensors, sizeof *v, by_name);
	for (size_t i = 1; i < g->n_tensors && !e; i++)
		if (by_name(&v[i - 1], &v[i]) == 0)
			e = llm_diag_set(d, LLM_ERR_CHECK, g->path, 0, "tensor '%s' appears twice",
					 ((struct llm_tensor_ref *)v[i])->name);
	/* Overlapping tensors would alias each other's data. */
	qsort(v, g->n_tensors, sizeof *v, by_data);
	for (size_t i = 1; i < g->n_tensors && !e; i++) {
		const struct llm_tensor_ref *a = v[i - 1], *b = v[i];
		if ((const char *)a->data + a->nbytes > (const char *)b->data)
			e = llm_diag_set(d, LLM_ERR_CHECK, g->path, 0,
					 "tensors '%s' and '%s' overlap", a->name, b->name);
	}
	free(v);
	return e;
}

static enum llm_err parse(struct llm_gguf *g, struct cur *c)
{
	struct llm_diag *d = c->d;
	char magic[4];
	uint64_t n_tensors, n_kv;
	enum llm_err e;
	if (c->n < 4 || memcmp(c->p, "GGUF", 4) != 0)
		return llm_diag_set(d, LLM_ERR_CHECK, g->path, 0,
				    "not a GGUF file: it does not start with \"GGUF\"");
	if ((e = rd(c, magic, 4, "the magic", NULL)) ||
	    (e = rd(c, &g->version, 4, "the version", NULL)))
		return e;
	if (g->version != GGUF_VERSION)
		return llm_diag_set(d, LLM_ERR_CHECK, g->path, 0,
				    "GGUF version %" PRIu32 " is not supported (only %d)%s",
				    g->version, GGUF_VERSION,
				    __builtin_bswap32(g->version) == GGUF_VERSION
					? ": the file is big-endian"
					: "");
	if ((e = rd(c, &n_tensors, 8, "the tensor count", NULL)) ||
	    (e = rd(c, &n_kv, 8, "the metadata count", NULL)))
		return e;
	/* A key/value takes at least 13 bytes and a tensor info 24, so counts the file cannot
	 * hold are refused before anything is allocated for them. */
	size_t left = c->n - c->pos;
	if (n_kv > left / 13 || n_tensors > left / 24 || n_kv * 13 + n_tensors * 24 > left)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, g->path, 0,
				    "%" PRIu64 " tensors and %" PRIu64 " metadata entries cannot "
				    "fit in a file of %zu bytes",
				    n_tensors, n_kv, c->n);
	g->kv = calloc((size_t)n_kv + 1, sizeof *g->kv);
	g->tensors = calloc((size_t)n_tensors + 1, sizeof *g->tensors);
	g->ggml_types = calloc((size_t)n_tensors + 1, sizeof *g->ggml_types);
	uint64_t *offsets = calloc((size_t)n_tensors + 1, sizeof *offsets);
	if (!g->kv || !g->tensors || !g->ggml_types || !offsets) {
		free(offsets);
		return llm_diag_set(d, LLM_ERR_NOMEM, g->path, 0, "out of memory");
	}
	for (uint64_t i = 0; i < n_kv && !e; i++) {
		e = rd_kv(c, &g->kv[i], i);
		g->n_kv++;
	}
	for (uint64_t i = 0; i < n_tensors && !e; i++) {
		e = rd_tensor_info(c, g, (size_t)i, &offsets[i]);
		g->n_tensors++;
	}
	g->alignment = LLM_GGUF_DEFAULT_ALIGNMENT;
	const struct llm_gguf_kv *al = e ? NULL : llm_gguf_find_kv(g, "general.alignment");
	if (al && (al->type != LLM_GGUF_UINT32 || al->u == 0 || (al->u & (al->u - 1))))
		e = llm_diag_set(d, LLM_ERR_CHECK, g->path, 0,
				 "general.alignment must be a power of two as a uint32");
	else if (al)
		g->alignment = (uint32_t)al->u;
	size_t start = (c->pos + g->alignment - 1) / g->alignment * g->alignment;
	if (!e && n_tensors && start > c->n)
		e = llm_diag_set(d, LLM_ERR_RANGE, g->path, 0,
				 "truncated: the tensor data would start at byte %zu of %zu", start,
				 c->n);
	size_t data_len = start <= c->n ? c->n - start : 0;
	for (size_t i = 0; i < g->n_tensors && !e; i++) {
		struct llm_tensor_ref *t = &g->tensors[i];
		if (offsets[i] % g->alignment)
			e = llm_diag_set(d, LLM_ERR_CHECK, g->path, 0,
					 "tensor '%s' has offset %" PRIu64
					 ", not a multiple of the alignment %" PRIu32,
					 t->name, offsets[i], g->alignment);
		else if (offsets[i] > data_len || t->nbytes > data_len - offsets[i])
			e = llm_diag_set(d, LLM_ERR_RANGE, g->path, 0,
					 "tensor '%s' (%zu bytes at offset %" PRIu64
					 ") runs past the %zu bytes of data",
					 t->name, t->nbytes, offsets[i], data_len);
		else
			t->data = c->p + start + offsets[i];
	}
	free(offsets);
	return e ? e : check_unique(g, d);
}

void llm_gguf_close(struct llm_gguf *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_kv; i++) {
		struct llm_gguf_kv *kv = &g->kv[i];
		free(kv->key);
		free(kv->str.s);
		if (kv->arr && kv->arr_type == LLM_GGUF_STRING)
			for (uint64_t j = 0; j < kv->arr_n; j++)
				free(((struct llm_gguf_str *)kv->arr)[j].s);
		free(kv->arr);
	}
	for (size_t i = 0; i < g->n_tensors; i++)
		free((char *)g->tensors[i].name);
	free(g->kv);
	free(g->tensors);
	free(g->ggml_types);
	llm_unmap_file(g->map_, g->map_len_);
	free(g->path);
	free(g);
}

enum llm_err llm_gguf_open(struct llm_gguf **out, const char *path, struct llm_diag *d)
{
	*out = NULL;
	struct llm_gguf *g = calloc(1, sizeof *g);
	if (!g || !(g->path = strdup(path))) {
		free(g);
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	enum llm_err e = llm_map_file(path, &g->map_, &g->map_len_, d);
	if (!e && g->map_len_ < 4)
		e = llm_diag_set(d, LLM_ERR_CHECK, path, 0,
				 "not a GGUF file: %lld bytes, too short for the magic",
				 (long long)g->map_len_);
	if (!e) {
		struct cur c = {g->map_, g->map_len_, 0, g->path, d};
		e = parse(g, &c);
	}
	if (e) {
		llm_gguf_close(g);
		return e;
	}
	*out = g;
	return LLM_OK;
}

const struct llm_gguf_kv *llm_gguf_find_kv(const struct llm_gguf *g, const char *key)
{
	for (size_t i = 0; i < g->n_kv; i++)
		if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0)
			return &g->kv[i];
	return NULL;
}

const struct llm_tensor_ref *llm_gguf_find_tensor(const struct llm_gguf *g, const char *name)
{
	for (size_t i = 0; i < g->n_tensors; i++)
		if (strcmp(g->tensors[i].name, name) == 0)
			return &g->tensors[i];
	return NULL;
}

static enum llm_err get(const struct llm_gguf *g, const char *key, const struct llm_gguf_kv **kv,
			struct llm_diag *d)
{
	*kv = llm_gguf_find_kv(g, key);
	if (!*kv)
		return llm_diag_set(d, LLM_ERR_MISSING, g->path, 0, "no metadata key '%s'", key);
	return LLM_OK;
}

static enum llm_err wrong_type(const struct llm_gguf *g, const struct llm_gguf_kv *kv,
			       const char *want, struct llm_diag *d)
{
	return llm_diag_set(d, LLM_ERR_TYPE, g->path, 0, "'%s' is a %s, expected %s", kv->key,
			    llm_gguf_type_name(kv->type), want);
}

enum llm_err llm_gguf_get_u32(const struct llm_gguf *g, const char *key, uint32_t *out,
			      struct llm_diag *d)
{
	const struct llm_gguf_kv *kv;
	enum llm_err e = get(g, key, &kv, d);
	if (e)
		return e;
	switch (kv->type) {
	case LLM_GGUF_UINT8:
	case LLM_GGUF_UINT16:
	case LLM_GGUF_UINT32:
	case LLM_GGUF_UINT64:
		if (kv->u > UINT32_MAX)
			break;
		*out = (uint32_t)kv->u;
		return LLM_OK;
	case LLM_GGUF_INT8:
	case LLM_GGUF_INT16:
	case LLM_GGUF_INT32:
	case LLM_GGUF_INT64:
		if (kv->i < 0 || kv->i > UINT32_MAX)
			break;
		*out = (uint32_t)kv->i;
		return LLM_OK;
	default:
		return wrong_type(g, kv, "an integer", d);
	}
	return llm_diag_set(d, LLM_ERR_RANGE, g->path, 0, "'%s' is out of the range of a uint32",
			    key);
}

enum llm_err llm_gguf_get_f32(const struct llm_gguf *g, const char *key, float *out,
			      struct llm_diag *d)
{
	const struct llm_gguf_kv *kv;
	enum llm_err e = get(g, key, &kv, d);
	if (e)
		return e;
	if (kv->type != LLM_GGUF_FLOAT32 && kv->type != LLM_GGUF_FLOAT64)
		return wrong_type(g, kv, "a float", d);
	*out = (float)kv->f;
	return LLM_OK;
}

enum llm_err llm_gguf_get_str(const struct llm_gguf *g, const char *key, const char **out,
			      struct llm_diag *d)
{
	const struct llm_gguf_kv *kv;
	enum llm_err e = get(g, key, &kv, d);
	if (e)
		return e;
	if (kv->type != LLM_GGUF_STRING)
		return wrong_type(g, kv, "a string", d);
	*out = kv->str.s;
	return LLM_OK;
}

enum llm_err llm_gguf_read_f32(const struct llm_gguf *g, const char *name, float *dst, int ndim,
			       const int64_t *shape, struct llm_diag *d)
{
	const struct llm_tensor_ref *t = llm_gguf_find_tensor(g, name);
	if (!t)
		return llm_diag_set(d, LLM_ERR_NOT_FOUND, g->path, 0, "no tensor '%s'", name);
	return llm_tensor_to_f32(t, dst, ndim, shape, g->path, d);
}

/* --- writing ------------------------------------------------------------------------------ */

struct wtensor {
	char *name;
	int ndim;
	int64_t shape[GGUF_MAX_DIMS];
	const float *data;
	float *owned; /* a permuted copy the writer frees */
	uint32_t type;
	uint64_t nbytes;
};

struct llm_gguf_writer {
	struct llm_buf kv; /* the key/values, serialised as added */
	uint64_t n_kv;
	char **keys;
	size_t cap_keys;
	struct wtensor *t;
	size_t n_t, cap_t;
};

enum llm_err llm_gguf_writer_new(struct llm_gguf_writer **out, struct llm_diag *d)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	llm_buf_init(&(*out)->kv, 0);
	return LLM_OK;
}

void llm_gguf_writer_free(struct llm_gguf_writer *w)
{
	if (!w)
		return;
	llm_buf_free(&w->kv);
	for (uint64_t i = 0; i < w->n_kv; i++)
		free(w->keys[i]);
	free(w->keys);
	for (size_t i = 0; i < w->n_t; i++) {
		free(w->t[i].name);
		free(w->t[i].owned);
	}
	free(w->t);
	free(w);
}

static enum llm_err put_u32(struct llm_buf *b, uint32_t v)
{
	return llm_buf_append(b, &v, 4);
}

static enum llm_err put_u64(struct llm_buf *b, uint64_t v)
{
	return llm_buf_append(b, &v, 8);
}

static enum llm_err put_str(struct llm_buf *b, const char *s)
{
	size_t n = strlen(s);
	enum llm_err e = put_u64(b, n);
	return e ? e : llm_buf_append(b, s, n);
}

/* Record key (refusing a second use) and write it with its type. */
static enum llm_err begin_kv(struct llm_gguf_writer *w, const char *key, enum llm_gguf_type type)
{
	if (!key || !*key)
		return LLM_ERR_USAGE;
	for (uint64_t i = 0; i < w->n_kv; i++)
		if (strcmp(w->keys[i], key) == 0)
			return LLM_ERR_USAGE;
	if (w->n_kv == w->cap_keys) {
		size_t cap = w->cap_keys ? 2 * w->cap_keys : 32;
		char **k = realloc(w->keys, cap * sizeof *k);
		if (!k)
			return LLM_ERR_NOMEM;
		w->keys = k;
		w->cap_keys = cap;
	}
	if (!(w->keys[w->n_kv] = strdup(key)))
		return LLM_ERR_NOMEM;
	w->n_kv++;
	enum llm_err e = put_str(&w->kv, key);
	return e ? e : put_u32(&w->kv, type);
}

enum llm_err llm_gguf_add_str(struct llm_gguf_writer *w, const char *key, const char *val)
{
	enum llm_err e = begin_kv(w, key, LLM_GGUF_STRING);
	return e ? e : put_str(&w->kv, val);
}

enum llm_err llm_gguf_add_u32(struct llm_gguf_writer *w, const char *key, uint32_t val)
{
	enum llm_err e = begin_kv(w, key, LLM_GGUF_UINT32);
	return e ? e : put_u32(&w->kv, val);
}

enum llm_err llm_gguf_add_i32(struct llm_gguf_writer *w, const char *key, int32_t val)
{
	enum llm_err e = begin_kv(w, key, LLM_GGUF_INT32);
	return e ? e : llm_buf_append(&w->kv, &val, 4);
}

enum llm_err llm_gguf_add_f32(struct llm_gguf_writer *w, const char *key, float val)
{
	enum llm_err e = begin_kv(w, key, LLM_GGUF_FLOAT32);
	return e ? e : llm_buf_append(&w->kv, &val, 4);
}

enum llm_err llm_gguf_add_bool(struct llm_gguf_writer *w, const char *key, bool val)
{
	enum llm_err e = begin_kv(w, key, LLM_GGUF_BOOL);
	return e ? e : llm_buf_putc(&w->kv, val ? 1 : 0);
}

static enum llm_err begin_arr(struct llm_gguf_writer *w, const char *key, enum llm_gguf_type at,
			      size_t n)
{
	enum llm_err e = begin_kv(w, key, LLM_GGUF_ARRAY);
	e = e ? e : put_u32(&w->kv, at);
	return e ? e : put_u64(&w->kv, n);
}

enum llm_err llm_gguf_add_arr_str(struct llm_gguf_writer *w, const char *key,
				  const char *const *vals, size_t n)
{
	enum llm_err e = begin_arr(w, key, LLM_GGUF_STRING, n);
	for (size_t i = 0; i < n && !e; i++)
		e = put_str(&w->kv, vals[i]);
	return e;
}

enum llm_err llm_gguf_add_arr_i32(struct llm_gguf_writer *w, const char *key, const int32_t *vals,
				  size_t n)
{
	enum llm_err e = begin_arr(w, key, LLM_GGUF_INT32, n);
	return e || !n ? e : llm_buf_append(&w->kv, vals, n * 4);
}

enum llm_err llm_gguf_add_arr_f32(struct llm_gguf_writer *w, const char *key, const float *vals,
				  size_t n)
{
	enum llm_err e = begin_arr(w, key, LLM_GGUF_FLOAT32, n);
	return e || !n ? e : llm_buf_append(&w->kv, vals, n * 4);
}

static enum llm_err add_tensor(struct llm_gguf_writer *w, const char *name, int ndim,
			       const int64_t *shape, const float *data, float *owned, uint32_t type)
{
	int64_t numel = llm_shape_numel(ndim, shape);
	if (!name || !*name || strlen(name) > GGUF_NAME_MAX || ndim < 1 || ndim > GGUF_MAX_DIMS ||
	    numel < 0 || (type != LLM_GGML_TYPE_F32 && type != LLM_GGML_TYPE_F16))
		return LLM_ERR_USAGE;
	for (size_t i = 0; i < w->n_t; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return LLM_ERR_USAGE;
	if (w->n_t == w->cap_t) {
		size_t cap = w->cap_t ? 2 * w->cap_t : 64;
		struct wtensor *t = realloc(w->t, cap * sizeof *t);
		if (!t)
			return LLM_ERR_NOMEM;
		w->t = t;
		w->cap_t = cap;
	}
	struct wtensor *t = &w->t[w->n_t];
	memset(t, 0, sizeof *t);
	if (!(t->name = strdup(name)))
		return LLM_ERR_NOMEM;
	t->ndim = ndim;
	memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
	t->data = data;
	t->owned = owned;
	t->type = type;
	t->nbytes = (uint64_t)numel * (type == LLM_GGML_TYPE_F32 ? 4 : 2);
	w->n_t++;
	return LLM_OK;
}

enum llm_err llm_gguf_add_tensor(struct llm_gguf_writer *w, const char *name, int ndim,
				 const int64_t *shape, const float *data, uint32_t type)
{
	return add_tensor(w, name, ndim, shape, data, NULL, type);
}

#define ALIGN_UP(x, a) (((x) + (a)-1) / (a) * (a))

static bool write_zeros(FILE *fp, size_t n)
{
	static const char zeros[LLM_GGUF_DEFAULT_ALIGNMENT];
	return n == 0 || fwrite(zeros, 1, n, fp) == n;
}

static bool write_data(FILE *fp, const struct wtensor *t)
{
	size_t n = (size_t)llm_shape_numel(t->ndim, t->shape);
	if (t->type == LLM_GGML_TYPE_F32)
		return n == 0 || fwrite(t->data, 4, n, fp) == n;
	uint16_t chunk[4096];
	for (size_t i = 0; i < n;) {
		size_t k = n - i < 4096 ? n - i : 4096;
		for (size_t j = 0; j < k; j++)
			chunk[j] = llm_f32_to_f16(t->data[i + j]);
		if (fwrite(chunk, 2, k, fp) != k)
			return false;
		i += k;
	}
	return true;
}

enum llm_err llm_gguf_writer_write(struct llm_gguf_writer *w, const char *path, struct llm_diag *d)
{
	const uint64_t align = LLM_GGUF_DEFAULT_ALIGNMENT;
	struct llm_buf h;
	llm_buf_init(&h, 0);
	enum llm_err e = llm_buf_append(&h, "GGUF", 4);
	e = e ? e : put_u32(&h, GGUF_VERSION);
	e = e ? e : put_u64(&h, w->n_t);
	e = e ? e : put_u64(&h, w->n_kv);
	e = e ? e : llm_buf_append(&h, w->kv.data, w->kv.len);
	uint64_t offset = 0;
	for (size_t i = 0; i < w->n_t && !e; i++) {
		const struct wtensor *t = &w->t[i];
		e = put_str(&h, t->name);
		e = e ? e : put_u32(&h, (uint32_t)t->ndim);
		for (int j = t->ndim - 1; j >= 0 && !e; j--)
			e = put_u64(&h, (uint64_t)t->shape[j]);
		e = e ? e : put_u32(&h, t->type);
		e = e ? e : put_u64(&h, offset);
		offset = ALIGN_UP(offset + t->nbytes, align);
	}
	while (!e && h.len % align)
		e = llm_buf_putc(&h, 0);
	if (e) {
		llm_buf_free(&h);
		return llm_diag_set(d, e, path, 0, "cannot build the GGUF header");
	}
	struct llm_atomic a;
	e = llm_atomic_open(&a, path, d);
	if (e) {
		llm_buf_free(&h);
		return e;
	}
	bool ok = fwrite(h.data, 1, h.len, a.fp) == h.len;
	for (size_t i = 0; ok && i < w->n_t; i++) {
		ok = write_data(a.fp, &w->t[i]);
		ok = ok && write_zeros(a.fp, ALIGN_UP(w->t[i].nbytes, align) - w->t[i].nbytes);
	}
	llm_buf_free(&h);
	if (!ok) {
		int err = errno;
		llm_atomic_abort(&a);
		return llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot write: %s", strerror(err));
	}
	return llm_atomic_commit(&a, d);
}

/* --- llama architecture ------------------------------------------------------------------- */

enum llm_err llm_gguf_llama_add_hparams(struct llm_gguf_writer *w,
					const struct llm_gguf_llama_hparams *hp)
{
	if (!hp->head_count || hp->embedding_length % hp->head_count)
		return LLM_ERR_USAGE;
	enum llm_err e = llm_gguf_add_str(w, "general.architecture", "llama");
	if (!e && hp->name)
		e = llm_gguf_add_str(w, "general.name", hp->name);
	e = e ? e : llm_gguf_add_u32(w, "general.file_type", hp->file_type);
	e = e ? e : llm_gguf_add_u32(w, "llama.vocab_size", hp->vocab_size);
	e = e ? e : llm_gguf_add_u32(w, "llama.context_length", hp->context_length);
	e = e ? e : llm_gguf_add_u32(w, "llama.embedding_length", hp->embedding_length);
	e = e ? e : llm_gguf_add_u32(w, "llama.block_count", hp->block_count);
	e = e ? e : llm_gguf_add_u32(w, "llama.feed_forward_length", hp->feed_forward_length);
	e = e ? e
	      : llm_gguf_add_u32(w, "llama.rope.dimension_count",
				 hp->embedding_length / hp->head_count);
	e = e ? e : llm_gguf_add_u32(w, "llama.attention.head_count", hp->head_count);
	e = e ? e : llm_gguf_add_u32(w, "llama.attention.head_count_kv", hp->head_count_kv);
	e = e ? e : llm_gguf_add_f32(w, "llama.attention.layer_norm_rms_epsilon", hp->rms_norm_eps);
	e = e ? e : llm_gguf_add_f32(w, "llama.rope.freq_base", hp->rope_freq_base);
	return e;
}

static const struct {
	const char *hf;
	const char *gguf;
} layer_names[] =
    {
	{"input_layernorm.weight", "attn_norm.weight"},
	{"self_attn.q_proj.weight", "attn_q.weight"},
	{"self_attn.k_proj.weight", "attn_k.weight"},
	{"self_attn.v_proj.weight", "attn_v.weight"},
	{"self_attn.o_proj.weight", "attn_output.weight"},
	{"post_attention_layernorm.weight", "ffn_norm.weight"},
	{"mlp.gate_proj.weight", "ffn_gate.weight"},
	{"mlp.up_proj.weight", "ffn_up.weight"},
	{"mlp.down_proj.weight", "ffn_down.weight"},
},
  model_names[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
};

/* Split "<prefix>N.<rest>" into N and rest; false when name does not have that form. */
static bool layer_parts(const char *name, const char *prefix, unsigned long *n, const char **rest)
{
	size_t pl = strlen(prefix);
	if (strncmp(name, prefix, pl) != 0)
		return false;
	const char *p = name + pl;
	if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '.'))
		return false;
	char *end;
	errno = 0;
	*n = strtoul(p, &end, 10);
	if (errno || *end != '.' || end - p > 6)
		return false;
	*rest = end + 1;
	return true;
}

static enum llm_err rename_tensor(const char *name, bool to_gguf, char *out, size_t outsz)
{
	const size_t nn = sizeof model_names / sizeof *model_names;
	const size_t nl = sizeof layer_names / sizeof *layer_names;
	int len = -1;
	for (size_t i = 0; i < nn; i++)
		if (strcmp(name, to_gguf ? model_names[i].hf : model_names[i].gguf) == 0)
			len = snprintf(out, outsz, "%s",
				       to_gguf ? model_names[i].gguf : model_names[i].hf);
	unsigned long layer;
	const char *rest;
	if (len < 0 && layer_parts(name, to_gguf ? "model.layers." : "blk.", &layer, &rest)) {
		for (size_t i = 0; i < nl; i++)
			if (strcmp(rest, to_gguf ? layer_names[i].hf : layer_names[i].gguf) == 0)
				len = snprintf(out, outsz, "%s%lu.%s",
					       to_gguf ? "blk." : "model.layers.", layer,
					       to_gguf ? layer_names[i].gguf : layer_names[i].hf);
	}
	if (len < 0)
		return LLM_ERR_NOT_FOUND;
	return (size_t)len < outsz ? LLM_OK : LLM_ERR_TOO_BIG;
}

enum llm_err llm_gguf_llama_name(const char *hf_name, char *out, size_t outsz)
{
	return rename_tensor(hf_name, true, out, outsz);
}

enum llm_err llm_gguf_llama_hf_name(const char *gguf_name, char *out, size_t outsz)
{
	return rename_tensor(gguf_name, false, out, outsz);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

uint32_t llm_gguf_llama_permute_heads(const char *hf_name, uint32_t head_count,
				      uint32_t head_count_kv)
{
	if (ends_with(hf_name, "self_attn.q_proj.weight"))
		return head_count;
	if (ends_with(hf_name, "self_attn.k_proj.weight"))
		return head_count_kv;
	return 0;
}

/* Hugging Face keeps the two halves of each head apart (rotate-half: pair i is rows i and
 * i + head_dim/2); GGUF interleaves them (pair i is rows 2i and 2i + 1).  As in
 * convert_hf_to_gguf.py, reshape(n_head, 2, half, cols).swapaxes(1, 2): GGUF row
 * h*head_dim + 2i + j is Hugging Face row h*head_dim + j*half + i. */
static enum llm_err permute(float *dst, const float *src, uint32_t n_head, size_t rows, size_t cols,
			    bool forward)
{
	if (n_head == 0 || rows % (2 * (size_t)n_head))
		return LLM_ERR_USAGE;
	size_t hd = rows / n_head, half = hd / 2;
	for (size_t h = 0; h < n_head; h++) {
		for (size_t i = 0; i < half; i++) {
			for (size_t j = 0; j < 2; j++) {
				size_t g = h * hd + 2 * i + j, f = h * hd + j * half + i;
				size_t to = forward ? g : f, from = forward ? f : g;
				memcpy(dst + to * cols, src + from * cols, cols * sizeof *dst);
			}
		}
	}
	return LLM_OK;
}

enum llm_err llm_gguf_llama_permute(float *dst, const float *src, uint32_t n_head, size_t rows,
				    size_t cols)
{
	return permute(dst, src, n_head, rows, cols, true);
}

enum llm_err llm_gguf_llama_unpermute(float *dst, const float *src, uint32_t n_head, size_t rows,
				      size_t cols)
{
	return permute(dst, src, n_head, rows, cols, false);
}

/* Add data under gguf_name, through a permuted copy when heads is not 0. */
static enum llm_err add_maybe_permuted(struct llm_gguf_writer *w, const char *gguf_name, int ndim,
				       const int64_t *shape, const float *data, uint32_t type,
				       uint32_t heads, const char *what, struct llm_diag *d)
{
	float *copy = NULL;
	enum llm_err e;
	if (heads) {
		size_t rows = ndim == 2 ? (size_t)shape[0] : 0,
		       cols = ndim == 2 ? (size_t)shape[1] : 0;
		if (ndim != 2 || rows % (2 * (size_t)heads))
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "'%s': %zu rows do not split into %" PRIu32
					    " heads of pairs",
					    what, rows, heads);
		if (!(copy = malloc(rows * cols * sizeof *copy + 1)))
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		permute(copy, data, heads, rows, cols, true);
	}
	e = add_tensor(w, gguf_name, ndim, shape, copy ? copy : data, copy, type);
	if (e) {
		free(copy);
		return llm_diag_set(d, e, NULL, 0, "cannot add tensor '%s' (%s)", gguf_name,
				    llm_err_name(e));
	}
	return LLM_OK;
}

enum llm_err llm_gguf_llama_add_hf_tensor(struct llm_gguf_writer *w, const char *hf_name, int ndim,
					  const int64_t *shape, const float *data, uint32_t type,
					  uint32_t head_count, uint32_t head_count_kv,
					  struct llm_diag *d)
{
	char name[128];
	if (llm_gguf_llama_name(hf_name, name, sizeof name))
		return llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0,
				    "tensor '%s' has no GGUF llama name", hf_name);
	uint32_t heads = llm_gguf_llama_permute_heads(hf_name, head_count, head_count_kv);
	return add_maybe_permuted(w, name, ndim, shape, data, type, heads, hf_name, d);
}

enum llm_err llm_gguf_llama_read_hf(const struct llm_gguf *g, const char *hf_name, float *dst,
				    int ndim, const int64_t *shape, uint32_t head_count,
				    uint32_t head_count_kv, struct llm_diag *d)
{
	char name[128];
	if (llm_gguf_llama_name(hf_name, name, sizeof name))
		return llm_diag_set(d, LLM_ERR_NOT_FOUND, g->path, 0,
				    "tensor '%s' has no GGUF llama name", hf_name);
	uint32_t heads = llm_gguf_llama_permute_heads(hf_name, head_count, head_count_kv);
	if (!heads)
		return llm_gguf_read_f32(g, name, dst, ndim, shape, d);
	if (ndim != 2 || shape[0] % (2 * (int64_t)heads))
		return llm_diag_set(d, LLM_ERR_USAGE, g->path, 0,
				    "'%s': rows do not split into %" PRIu32 " heads of pairs",
				    hf_name, heads);
	size_t n = (size_t)shape[0] * (size_t)shape[1];
	float *tmp = malloc(n * sizeof *tmp + 1);
	if (!tmp)
		return llm_diag_set(d, LLM_ERR_NOMEM, g->path, 0, "out of memory");
	enum llm_err e = llm_gguf_read_f32(g, name, tmp, ndim, shape, d);
	if (!e)
		permute(dst, tmp, heads, (size_t)shape[0], (size_t)shape[1], false);
	free(tmp);
	return e;
}

/* --- LoRA adapters ------------------------------------------------------------------------ */

enum llm_err llm_gguf_lora_write(const char *path, const struct llm_lora_pair *pairs, size_t n,
				 float alpha, uint32_t head_count, uint32_t head_count_kv,
				 struct llm_diag *d)
{
	struct llm_gguf_writer *w;
	enum llm_err e = llm_gguf_writer_new(&w, d);
	if (e)
		return e;
	e = llm_gguf_add_str(w, "general.architecture", "llama");
	e = e ? e : llm_gguf_add_str(w, "general.type", "adapter");
	e = e ? e : llm_gguf_add_str(w, "adapter.type", "lora");
	e = e ? e : llm_gguf_add_f32(w, "adapter.lora.alpha", alpha);
	if (e) {
		llm_gguf_writer_free(w);
		return llm_diag_set(d, e, path, 0, "cannot build the adapter metadata");
	}
	for (size_t i = 0; i < n && !e; i++) {
		const struct llm_lora_pair *p = &pairs[i];
		char hf[256], base[128], name[160];
		int len = snprintf(hf, sizeof hf, "%s.weight", p->module);
		if (len < 0 || (size_t)len >= sizeof hf ||
		    llm_gguf_llama_name(hf, base, sizeof base)) {
			e = llm_diag_set(d, LLM_ERR_NOT_FOUND, path, 0,
					 "LoRA module '%s' has no GGUF llama name", p->module);
			break;
		}
		/* llama.cpp multiplies x by A (ne [in, r]) then B (ne [r, out]): the same
		 * row-major (r, in) and (out, r) matrices PEFT saves.  B's rows are the output
		 * rows of the base weight, so they follow its Q/K permutation. */
		int64_t sa[2] = {p->r, p->in}, sb[2] = {p->out, p->r};
		snprintf(name, sizeof name, "%s.lora_a", base);
		e = add_maybe_permuted(w, name, 2, sa, p->a, LLM_GGML_TYPE_F32, 0, p->module, d);
		if (e)
			break;
		snprintf(name, sizeof name, "%s.lora_b", base);
		uint32_t heads = llm_gguf_llama_permute_heads(hf, head_count, head_count_kv);
		e = add_maybe_permuted(w, name, 2, sb, p->b, LLM_GGML_TYPE_F32, heads, p->module,
				       d);
	}
	if (!e)
		e = llm_gguf_writer_write(w, path, d);
	llm_gguf_writer_free(w);
	return e;
}
