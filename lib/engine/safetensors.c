#include "config.h"

#include "engine/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic.h"
#include "core/buf.h"
#include "core/mapfile.h"

/* Tensor bytes are copied as they are, so the host must share the files' byte order. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors and GGUF data are little-endian; a big-endian host needs byte swapping"
#endif

static const struct {
	const char *name;
	size_t size;
	int order; /* the Python library's dtype order: it lays out larger dtypes first */
} dtypes[] = {
    [LLM_DTYPE_F32] = {"F32", 4, 3},
    [LLM_DTYPE_F16] = {"F16", 2, 1},
    [LLM_DTYPE_BF16] = {"BF16", 2, 2},
};

const char *llm_dtype_name(enum llm_dtype t)
{
	return (unsigned)t < sizeof dtypes / sizeof *dtypes ? dtypes[t].name : "?";
}

size_t llm_dtype_size(enum llm_dtype t)
{
	return (unsigned)t < sizeof dtypes / sizeof *dtypes ? dtypes[t].size : 0;
}

float llm_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	uint32_t bits;
	if (exp == 0x1f) {
		bits = sign | 0x7f800000 | (man << 13);
	} else if (exp != 0) {
		bits = sign | ((exp + 112) << 23) | (man << 13);
	} else if (man == 0) {
		bits = sign;
	} else {
		/* A subnormal: normalise the mantissa into an f32 normal. */
		exp = 113;
		while (!(man & 0x400)) {
			man <<= 1;
			exp--;
		}
		bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
	}
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

uint16_t llm_f32_to_f16(float f)
{
	uint32_t x;
	memcpy(&x, &f, sizeof x);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t ax = x & 0x7fffffff;
	if (ax >= 0x7f800000) /* infinity, or NaN kept quiet and non-zero */
		return (uint16_t)(sign | 0x7c00 |
				  (ax > 0x7f800000 ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
	if (ax >= 0x477ff000) /* 65520 and above round to infinity */
		return (uint16_t)(sign | 0x7c00);
	if (ax < 0x38800000) {	      /* below the smallest normal f16, 2^-14 */
		if (ax <= 0x33000000) /* up to 2^-25, the tie, which rounds to even zero */
			return (uint16_t)sign;
		uint32_t e = ax >> 23;
		uint32_t m = (ax & 0x7fffff) | 0x800000;
		uint32_t shift = 126 - e; /* units of 2^-24 */
		uint32_t r = m >> shift;
		uint32_t rem = m & ((1u << shift) - 1);
		uint32_t half = 1u << (shift - 1);
		if (rem > half || (rem == half && (r & 1)))
			r++;
		return (uint16_t)(sign | r);
	}
	uint32_t r = (ax >> 13) - (112u << 10);
	uint32_t rem = ax & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
		r++;
	return (uint16_t)(sign | r);
}

float llm_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

int64_t llm_shape_numel(int ndim, const int64_t *shape)
{
	int64_t n = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n))
			return -1;
	}
	return n;
}

void llm_shape_format(int ndim, const int64_t *shape, char *out, size_t outsz)
{
	size_t len = 0;
	if (outsz == 0)
		return;
	out[0] = '\0';
	len += (size_t)snprintf(out + len, outsz - len, "[");
	for (int i = 0; i < ndim && len < outsz; i++)
		len +=
		    (size_t)snprintf(out + len, outsz - len, "%s%" PRId64, i ? ", " : "", shape[i]);
	if (len < outsz)
		snprintf(out + len, outsz - len, "]");
}

enum llm_err llm_tensor_to_f32(const struct llm_tensor_ref *t, float *dst, int ndim,
			       const int64_t *shape, const char *file, struct llm_diag *d)
{
	bool same = t->ndim == ndim;
	for (int i = 0; same && i < ndim; i++)
		same = t->shape[i] == shape[i];
	if (!same) {
		char have[128], want[128];
		llm_shape_format(t->ndim, t->shape, have, sizeof have);
		llm_shape_format(ndim, shape, want, sizeof want);
		return llm_diag_set(d, LLM_ERR_CHECK, file, 0,
				    "tensor '%s' has shape %s, expected %s", t->name, have, want);
	}
	size_t n = (size_t)llm_shape_numel(t->ndim, t->shape);
	const unsigned char *p = t->data;
	switch (t->dtype) {
	case LLM_DTYPE_F32:
		memcpy(dst, p, n * 4);
		return LLM_OK;
	case LLM_DTYPE_F16:
	case LLM_DTYPE_BF16:
		for (size_t i = 0; i < n; i++) {
			/* Byte by byte: data inside a file need not be aligned. */
			uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
			dst[i] = t->dtype == LLM_DTYPE_F16 ? llm_f16_to_f32(h) : llm_bf16_to_f32(h);
		}
		return LLM_OK;
	}
	return llm_diag_set(d, LLM_ERR_TYPE, file, 0, "tensor '%s' has an unknown dtype", t->name);
}

/* --- reading ------------------------------------------------------------------------------ */

void llm_safetensors_close(struct llm_safetensors *st)
{
	if (!st)
		return;
	llm_unmap_file(st->map_, st->map_len_);
	if (st->json_)
		json_decref(st->json_);
	free(st->tensors);
	free(st->meta);
	free(st->path);
	free(st);
}

static int by_offset(const void *a, const void *b)
{
	const struct llm_tensor_ref *x = a, *y = b;
	const char *px = x->data, *py = y->data;
	if (px != py)
		return px < py ? -1 : 1;
	return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static enum llm_err parse_dtype(const char *s, const char *tname, enum llm_dtype *out,
				const char *path, struct llm_diag *d)
{
	for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++) {
		if (strcmp(s, dtypes[i].name) == 0) {
			*out = (enum llm_dtype)i;
			return LLM_OK;
		}
	}
	return llm_diag_set(d, LLM_ERR_TYPE, path, 0,
			    "tensor '%s' has dtype %s: only F32, F16 and BF16 load", tname, s);
}

/* Check one header entry and fill t; data holds the offset until the region is known. */
static enum llm_err parse_entry(const char *name, json_t *v, size_t data_len,
				struct llm_tensor_ref *t, const char *path, struct llm_diag *d)
{
	if (!json_is_object(v))
		return llm_diag_set(d, LLM_ERR_TYPE, path, 0, "tensor '%s': entry is not an object",
				    name);
	json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
	       *off = json_object_get(v, "data_offsets");
	if (!dt || !sh || !off)
		return llm_diag_set(d, LLM_ERR_MISSING, path, 0, "tensor '%s': missing %s", name,
				    !dt	  ? "dtype"
				    : !sh ? "shape"
					  : "data_offsets");
	if (!json_is_string(dt))
		return llm_diag_set(d, LLM_ERR_TYPE, path, 0, "tensor '%s': dtype is not a string",
				    name);
	t->name = name;
	enum llm_err e = parse_dtype(json_string_value(dt), name, &t->dtype, path, d);
	if (e)
		return e;
	if (!json_is_array(sh))
		return llm_diag_set(d, LLM_ERR_TYPE, path, 0, "tensor '%s': shape is not an array",
				    name);
	if (json_array_size(sh) > LLM_TENSOR_MAX_DIMS)
		return llm_diag_set(d, LLM_ERR_RANGE, path, 0,
				    "tensor '%s' has %zu dimensions: at most %d are supported",
				    name, json_array_size(sh), LLM_TENSOR_MAX_DIMS);
	t->ndim = (int)json_array_size(sh);
	for (int i = 0; i < t->ndim; i++) {
		json_t *x = json_array_get(sh, (size_t)i);
		if (!json_is_integer(x) || json_integer_value(x) < 0)
			return llm_diag_set(d, LLM_ERR_TYPE, path, 0,
					    "tensor '%s': shape holds something other than "
					    "non-negative integers",
					    name);
		t->shape[i] = json_integer_value(x);
	}
	if (!json_is_array(off) || json_array_size(off) != 2 ||
	    !json_is_integer(json_array_get(off, 0)) || !json_is_integer(json_array_get(off, 1)))
		return llm_diag_set(d, LLM_ERR_TYPE, path, 0,
				    "tensor '%s': data_offsets is not two integers", name);
	json_int_t b = json_integer_value(json_array_get(off, 0));
	json_int_t en = json_integer_value(json_array_get(off, 1));
	if (b < 0 || en < b)
		return llm_diag_set(d, LLM_ERR_RANGE, path, 0,
				    "tensor '%s': data_offsets [%lld, %lld] are not a range", name,
				    (long long)b, (long long)en);
	if ((uint64_t)en > data_len)
		return llm_diag_set(d, LLM_ERR_RANGE, path, 0,
				    "tensor '%s': data_offsets [%lld, %lld] run past the %zu bytes "
				    "of data",
				    name, (long long)b, (long long)en, data_len);
	int64_t numel = llm_shape_numel(t->ndim, t->shape);
	int64_t need;
	char sbuf[128];
	llm_shape_format(t->ndim, t->shape, sbuf, sizeof sbuf);
	if (numel < 0 || __builtin_mul_overflow(numel, (int64_t)llm_dtype_size(t->dtype), &need))
		return llm_diag_set(d, LLM_ERR_RANGE, path, 0,
				    "tensor '%s': shape %s overflows 64 bits", name, sbuf);
	if (need != en - b)
		return llm_diag_set(d, LLM_ERR_CHECK, path, 0,
				    "tensor '%s': data_offsets [%lld, %lld] hold %lld bytes, but "
				    "shape %s of %s needs %lld",
				    name, (long long)b, (long long)en, (long long)(en - b), sbuf,
				    llm_dtype_name(t->dtype), (long long)need);
	t->data = (const void *)(uintptr_t)b;
	t->nbytes = (size_t)(en - b);
	return LLM_OK;
}

static enum llm_err parse_meta(struct llm_safetensors *st, json_t *m, struct llm_diag *d)
{
	if (!json_is_object(m))
		return llm_diag_set(d, LLM_ERR_TYPE, st->path, 0, "__metadata__ is not an object");
	st->meta = calloc(json_object_size(m) + 1, sizeof *st->meta);
	if (!st->meta)
		return llm_diag_set(d, LLM_ERR_NOMEM, st->path, 0, "out of memory");
	const char *k;
	json_t *v;
	json_object_foreach(m, k, v)
	{
		if (!json_is_string(v))
			return llm_diag_set(d, LLM_ERR_TYPE, st->path, 0,
					    "__metadata__ value '%s' is not a string", k);
		st->meta[st->n_meta].key = k;
		st->meta[st->n_meta].val = json_string_value(v);
		st->n_meta++;
	}
	return LLM_OK;
}

/* Everything after the mapping: header length, JSON, entries, then the layout of the data. */
static enum llm_err parse(struct llm_safetensors *st, const unsigned char *p, size_t size,
			  struct llm_diag *d)
{
	const char *path = st->path;
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | p[i];
	if (hlen > LLM_SAFETENSORS_HEADER_MAX)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, path, 0,
				    "header length %" PRIu64 " is over the %u-byte limit", hlen,
				    LLM_SAFETENSORS_HEADER_MAX);
	if (hlen > size - 8)
		return llm_diag_set(d, LLM_ERR_RANGE, path, 0,
				    "header length %" PRIu64 " runs past the end of the file "
				    "(%zu bytes)",
				    hlen, size);
	if (hlen == 0 || p[8] != '{')
		return llm_diag_set(d, LLM_ERR_JSON, path, 0, "header does not start with '{'");
	json_error_t jerr;
	json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return llm_diag_set(d, LLM_ERR_JSON, path, 0,
				    "header is not valid JSON: %s (at %d)", jerr.text,
				    jerr.position);
	st->json_ = root;
	if (!json_is_object(root))
		return llm_diag_set(d, LLM_ERR_JSON, path, 0, "header is not a JSON object");
	const unsigned char *data = p + 8 + hlen;
	size_t data_len = size - 8 - (size_t)hlen;
	st->tensors = calloc(json_object_size(root) + 1, sizeof *st->tensors);
	if (!st->tensors)
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	const char *k;
	json_t *v;
	enum llm_err e;
	json_object_foreach(root, k, v)
	{
		if (strcmp(k, "__metadata__") == 0)
			e = parse_meta(st, v, d);
		else
			e = parse_entry(k, v, data_len, &st->tensors[st->n_tensors++], path, d);
		if (e)
			return e;
	}
	/* The data must be exactly the tensors, back to back: no gaps a writer could hide
	 * things in, no overlaps, nothing after the last one. */
	qsort(st->tensors, st->n_tensors, sizeof *st->tensors, by_offset);
	size_t at = 0;
	for (size_t i = 0; i < st->n_tensors; i++) {
		struct llm_tensor_ref *t = &st->tensors[i];
		size_t b = (size_t)(uintptr_t)t->data;
		if (b < at)
			return llm_diag_set(d, LLM_ERR_CHECK, path, 0,
					    "tensor '%s' at data offset %zu overlaps the tensor "
					    "before it (which ends at %zu)",
					    t->name, b, at);
		if (b > at)
			return llm_diag_set(d, LLM_ERR_CHECK, path, 0,
					    "tensor '%s' starts at data offset %zu, leaving a gap "
					    "after %zu",
					    t->name, b, at);
		at = b + t->nbytes;
		t->data = data + b;
	}
	if (at != data_len)
		return llm_diag_set(d, LLM_ERR_CHECK, path, 0,
				    "the tensors end at data offset %zu but the file holds %zu "
				    "bytes of data",
				    at, data_len);
	return LLM_OK;
}

enum llm_err llm_safetensors_open(struct llm_safetensors **out, const char *path,
				  struct llm_diag *d)
{
	*out = NULL;
	struct llm_safetensors *st = calloc(1, sizeof *st);
	if (!st || !(st->path = strdup(path))) {
		free(st);
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	enum llm_err e = llm_map_file(path, &st->map_, &st->map_len_, d);
	if (!e && st->map_len_ < 8)
		e = llm_diag_set(d, LLM_ERR_RANGE, path, 0,
				 "truncated: %lld bytes, but a safetensors file starts with an "
				 "8-byte header length",
				 (long long)st->map_len_);
	if (!e)
		e = parse(st, st->map_, st->map_len_, d);
	if (e) {
		llm_safetensors_close(st);
		return e;
	}
	*out = st;
	return LLM_OK;
}

const struct llm_tensor_ref *llm_safetensors_find(const struct llm_safetensors *st,
						  const char *name)
{
	for (size_t i = 0; i < st->n_tensors; i++)
		if (strcmp(st->tensors[i].name, name) == 0)
			return &st->tensors[i];
	return NULL;
}

const char *llm_safetensors_meta(const struct llm_safetensors *st, const char *key)
{
	for (size_t i = 0; i < st->n_meta; i++)
		if (strcmp(st->meta[i].key, key) == 0)
			return st->meta[i].val;
	return NULL;
}

enum llm_err llm_safetensors_read_f32(const struct llm_safetensors *st, const char *name,
				      float *dst, int ndim, const int64_t *shape,
				      struct llm_diag *d)
{
	const struct llm_tensor_ref *t = llm_safetensors_find(st, name);
	if (!t)
		return llm_diag_set(d, LLM_ERR_NOT_FOUND, st->path, 0, "no tensor '%s'", name);
	return llm_tensor_to_f32(t, dst, ndim, shape, st->path, d);
}

/* --- writing ------------------------------------------------------------------------------ */

/* The Python library's data order: larger dtypes first, then by name, bytewise. */
static int by_layout(const void *a, const void *b)
{
	const struct llm_tensor_ref *x = *(const struct llm_tensor_ref *const *)a;
	const struct llm_tensor_ref *y = *(const struct llm_tensor_ref *const *)b;
	if (dtypes[x->dtype].order != dtypes[y->dtype].order)
		return dtypes[y->dtype].order - dtypes[x->dtype].order;
	return strcmp(x->name, y->name);
}

static int by_key(const void *a, const void *b)
{
	return strcmp((*(const struct llm_kv_str *const *)a)->key,
		      (*(const struct llm_kv_str *const *)b)->key);
}

static enum llm_err check_tensors(const char *path, const struct llm_tensor_ref *ts, size_t n,
				  struct llm_diag *d)
{
	for (size_t i = 0; i < n; i++) {
		const struct llm_tensor_ref *t = &ts[i];
		if (!t->name || !*t->name || strcmp(t->name, "__metadata__") == 0)
			return llm_diag_set(d, LLM_ERR_USAGE, path, 0,
					    "tensor %zu has no usable name", i);
		if ((unsigned)t->dtype >= sizeof dtypes / sizeof *dtypes)
			return llm_diag_set(d, LLM_ERR_USAGE, path, 0,
					    "tensor '%s' has an unknown dtype", t->name);
		if (t->ndim < 0 || t->ndim > LLM_TENSOR_MAX_DIMS ||
		    llm_shape_numel(t->ndim, t->shape) < 0)
			return llm_diag_set(d, LLM_ERR_USAGE, path, 0,
					    "tensor '%s' has an invalid shape", t->name);
	}
	return LLM_OK;
}

static enum llm_err build_header(struct llm_buf *h, struct llm_tensor_ref **order, size_t n,
				 const struct llm_kv_str **keys, size_t n_meta)
{
	enum llm_err e = llm_buf_putc(h, '{');
	if (n_meta) {
		e = e ? e : llm_buf_puts(h, "\"__metadata__\":{");
		for (size_t i = 0; i < n_meta && !e; i++) {
			e = i ? llm_buf_putc(h, ',') : LLM_OK;
			e = e ? e : llm_buf_json_string(h, keys[i]->key, strlen(keys[i]->key));
			e = e ? e : llm_buf_putc(h, ':');
			e = e ? e : llm_buf_json_string(h, keys[i]->val, strlen(keys[i]->val));
		}
		e = e ? e : llm_buf_putc(h, '}');
	}
	uint64_t at = 0;
	for (size_t i = 0; i < n && !e; i++) {
		const struct llm_tensor_ref *t = order[i];
		uint64_t nb =
		    (uint64_t)llm_shape_numel(t->ndim, t->shape) * llm_dtype_size(t->dtype);
		e = (i || n_meta) ? llm_buf_putc(h, ',') : LLM_OK;
		e = e ? e : llm_buf_json_string(h, t->name, strlen(t->name));
		e = e ? e
		      : llm_buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[",
				       llm_dtype_name(t->dtype));
		for (int j = 0; j < t->ndim && !e; j++)
			e = llm_buf_printf(h, "%s%" PRId64, j ? "," : "", t->shape[j]);
		e = e ? e
		      : llm_buf_printf(h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", at,
				       at + nb);
		at += nb;
	}
	e = e ? e : llm_buf_putc(h, '}');
	while (!e && h->len % 8)
		e = llm_buf_putc(h, ' ');
	return e;
}

enum llm_err llm_safetensors_write(const char *path, const struct llm_tensor_ref *tensors, size_t n,
				   const struct llm_kv_str *meta, size_t n_meta, struct llm_diag *d)
{
	enum llm_err e = check_tensors(path, tensors, n, d);
	if (e)
		return e;
	struct llm_tensor_ref **order = malloc((n + 1) * sizeof *order);
	const struct llm_kv_str **keys = malloc((n_meta + 1) * sizeof *keys);
	struct llm_buf h;
	llm_buf_init(&h, LLM_SAFETENSORS_HEADER_MAX);
	if (!order || !keys) {
		e = llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		order[i] = (struct llm_tensor_ref *)&tensors[i];
	for (size_t i = 0; i < n_meta; i++)
		keys[i] = &meta[i];
	qsort(order, n, sizeof *order, by_layout);
	qsort(keys, n_meta, sizeof *keys, by_key);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
			e = llm_diag_set(d, LLM_ERR_USAGE, path, 0, "tensor '%s' appears twice",
					 order[i]->name);
			goto out;
		}
	}
	for (size_t i = 1; i < n_meta; i++) {
		if (strcmp(keys[i - 1]->key, keys[i]->key) == 0) {
			e = llm_diag_set(d, LLM_ERR_USAGE, path, 0,
					 "metadata key '%s' appears twice", keys[i]->key);
			goto out;
		}
	}
	e = build_header(&h, order, n, keys, n_meta);
	if (e) {
		e = llm_diag_set(d, e, path, 0, "cannot build the header: %s", llm_err_name(e));
		goto out;
	}
	struct llm_atomic a;
	e = llm_atomic_open(&a, path, d);
	if (e)
		goto out;
	unsigned char len8[8];
	for (int i = 0; i < 8; i++)
		len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
	bool ok = fwrite(len8, 1, 8, a.fp) == 8 && fwrite(h.data, 1, h.len, a.fp) == h.len;
	for (size_t i = 0; ok && i < n; i++) {
		size_t nb = (size_t)llm_shape_numel(order[i]->ndim, order[i]->shape) *
			    llm_dtype_size(order[i]->dtype);
		ok = nb == 0 || fwrite(order[i]->data, 1, nb, a.fp) == nb;
	}
	if (!ok) {
		int err = errno;
		llm_atomic_abort(&a);
		e = llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot write: %s", strerror(err));
		goto out;
	}
	e = llm_atomic_commit(&a, d);
out:
	llm_buf_free(&h);
	free(order);
	free(keys);
	return e;
}
