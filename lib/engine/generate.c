/* Inference: the key/value cache and batched evaluation, then one request's sampling and
 * streaming, then llm_generate and scoring on top of them.
 *
 * The layer arithmetic repeats model.c's step for step (RMSNorm with a double sum, RoPE
 * rotate-half from the model's tables, softmax with a double sum, SwiGLU), so the logits of the
 * cached path match the training forward's to float rounding; only the order of the attention
 * products differs. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/generate.h"
#include "engine/matmul.h"
#include "text/bpe.h"

/* Query rows per attention block; one block's scores are ATT_BLOCK × n_ctx floats. */
#define ATT_BLOCK 64

/* A run of consecutive batch entries of one slot: they attend to the same cache. */
struct segment {
	int slot;
	int first; /* batch index of the run's first entry */
	int n;	   /* entries */
	int pos;   /* the position of the first */
};

struct llm_kv {
	const struct llm_model *m;
	int n_slots, n_ctx, kvd;
	int *len;	  /* tokens cached per slot; -1 when the slot is free */
	int *pending;	  /* per slot, entries of the batch being checked */
	float *k, *v;	  /* (layers, n_slots, n_ctx, kvd) */
	size_t cap;	  /* entries the scratch holds */
	float *mem;	  /* the scratch below, one allocation */
	float *x, *xn;	  /* residual stream and normed input (cap, D) */
	float *q, *att;	  /* (cap, D) */
	float *kk, *vv;	  /* (cap, kvd) */
	float *gate, *up; /* (cap, F) */
	int *pos;	  /* position of each entry */
	int *out_idx;	  /* the entries that want logits, in order */
	struct segment *seg;
	int att_threads;
	float *att_scratch; /* ATT_BLOCK · n_ctx per thread */
};

/* --- the cache ------------------------------------------------------------------------------ */

enum llm_err llm_kv_new(struct llm_kv **out, const struct llm_model *m, int n_slots, int n_ctx,
			struct llm_diag *diag)
{
	*out = NULL;
	const struct llm_model_config *c = &m->config;
	/* The cache path reads the base weights directly; unmerged adapters would be ignored. */
	if (m->lora)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "LoRA adapters are attached: merge them (llm_lora_merge) before "
				    "generating");
	if (n_ctx == 0)
		n_ctx = c->max_position_embeddings;
	if (n_slots <= 0 || n_ctx < 0 || n_ctx > c->max_position_embeddings)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "cache of %d slots of %d tokens: need at least one slot and a "
				    "context of at most max_position_embeddings %d",
				    n_slots, n_ctx, c->max_position_embeddings);
	struct llm_kv *kv = calloc(1, sizeof *kv);
	if (!kv)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	kv->m = m;
	kv->n_slots = n_slots;
	kv->n_ctx = n_ctx;
	kv->kvd = llm_model_config_head_dim(c) * c->num_key_value_heads;
	size_t floats = (size_t)c->num_hidden_layers * n_slots * n_ctx * kv->kvd;
	kv->len = malloc((size_t)n_slots * sizeof *kv->len);
	kv->pending = calloc((size_t)n_slots, sizeof *kv->pending);
	kv->k = malloc(floats * sizeof(float));
	kv->v = malloc(floats * sizeof(float));
	if (!kv->len || !kv->pending || !kv->k || !kv->v) {
		llm_kv_free(kv);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0,
				    "out of memory for a cache of %zu MB",
				    2 * floats * sizeof(float) >> 20);
	}
	for (int s = 0; s < n_slots; s++)
		kv->len[s] = -1;
	*out = kv;
	return LLM_OK;
}

void llm_kv_free(struct llm_kv *kv)
{
	if (!kv)
		return;
	free(kv->len);
	free(kv->pending);
	free(kv->k);
	free(kv->v);
	free(kv->mem);
	free(kv->pos);
	free(kv->out_idx);
	free(kv->seg);
	free(kv->att_scratch);
	free(kv);
}

int llm_kv_n_ctx(const struct llm_kv *kv)
{
	return kv->n_ctx;
}

int llm_kv_n_slots(const struct llm_kv *kv)
{
	return kv->n_slots;
}

enum llm_err llm_kv_slot_new(struct llm_kv *kv, int *slot, struct llm_diag *diag)
{
	for (int s = 0; s < kv->n_slots; s++)
		if (kv->len[s] < 0) {
			kv->len[s] = 0;
			*slot = s;
			return LLM_OK;
		}
	return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "all %d cache slots are in use",
			    kv->n_slots);
}

void llm_kv_slot_free(struct llm_kv *kv, int slot)
{
	if (slot >= 0 && slot < kv->n_slots)
		kv->len[slot] = -1;
}

int llm_kv_slot_len(const struct llm_kv *kv, int slot)
{
	if (slot < 0 || slot >= kv->n_slots)
		return -1;
	return kv->len[slot];
}

enum llm_err llm_kv_slot_truncate(struct llm_kv *kv, int slot, int len, struct llm_diag *diag)
{
	int have = llm_kv_slot_len(kv, slot);
	if (have < 0 || len < 0 || len > have)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "cannot truncate slot %d of %d tokens to %d", slot, have, len);
	kv->len[slot] = len;
	return LLM_OK;
}

/* The cached keys (or values) of layer l, slot s, from position 0. */
static float *cache_at(const struct llm_kv *kv, float *base, int l, int s)
{
	return base + ((size_t)l * kv->n_slots + s) * kv->n_ctx * kv->kvd;
}

/* --- batches -------------------------------------------------------------------------------- */

void llm_batch_init(struct llm_batch *b)
{
	memset(b, 0, sizeof *b);
}

void llm_batch_free(struct llm_batch *b)
{
	free(b->token);
	free(b->slot);
	free(b->row);
	free(b->logits);
	memset(b, 0, sizeof *b);
}

void llm_batch_clear(struct llm_batch *b)
{
	b->n = 0;
	b->n_logits = 0;
}

enum llm_err llm_batch_add(struct llm_batch *b, int slot, uint32_t token, bool want_logits,
			   struct llm_diag *diag)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		uint32_t *t = realloc(b->token, cap * sizeof *t);
		if (t)
			b->token = t;
		int *s = realloc(b->slot, cap * sizeof *s);
		if (s)
			b->slot = s;
		int *r = realloc(b->row, cap * sizeof *r);
		if (r)
			b->row = r;
		if (!t || !s || !r)
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		b->cap = cap;
	}
	b->token[b->n] = token;
	b->slot[b->n] = slot;
	b->row[b->n] = want_logits ? (int)b->n_logits++ : -1;
	b->n++;
	return LLM_OK;
}

const float *llm_batch_logits(const struct llm_batch *b, size_t i)
{
	if (i >= b->n || b->row[i] < 0 || !b->logits)
		return NULL;
	return b->logits + (size_t)b->row[i] * b->n_vocab;
}

/* --- evaluation ----------------------------------------------------------------------------- */

/* Grow the scratch to hold n entries, and the attention scratch to the thread count. */
static enum llm_err ensure_scratch(struct llm_kv *kv, size_t n, struct llm_diag *diag)
{
	const struct llm_model_config *c = &kv->m->config;
	int nt = llm_threads_max();
	if (nt > kv->att_threads) {
		free(kv->att_scratch);
		kv->att_threads = 0;
		kv->att_scratch = malloc((size_t)nt * ATT_BLOCK * kv->n_ctx * sizeof(float));
		if (!kv->att_scratch)
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		kv->att_threads = nt;
	}
	if (n <= kv->cap)
		return LLM_OK;
	size_t cap = n < 2 * kv->cap ? 2 * kv->cap : n;
	size_t d = (size_t)c->hidden_size, f = (size_t)c->intermediate_size, kvd = kv->kvd;
	size_t per = 4 * d + 2 * kvd + 2 * f;
	free(kv->mem);
	free(kv->pos);
	free(kv->out_idx);
	free(kv->seg);
	kv->cap = 0;
	kv->mem = malloc(cap * per * sizeof(float));
	kv->pos = malloc(cap * sizeof *kv->pos);
	kv->out_idx = malloc(cap * sizeof *kv->out_idx);
	kv->seg = malloc(cap * sizeof *kv->seg);
	if (!kv->mem || !kv->pos || !kv->out_idx || !kv->seg)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0,
				    "out of memory for a batch of %zu tokens", n);
	float *p = kv->mem;
	kv->x = p, p += cap * d;
	kv->xn = p, p += cap * d;
	kv->q = p, p += cap * d;
	kv->att = p, p += cap * d;
	kv->kk = p, p += cap * kvd;
	kv->vv = p, p += cap * kvd;
	kv->gate = p, p += cap * f;
	kv->up = p;
	kv->cap = cap;
	return LLM_OK;
}

/* out = x · rsqrt(mean(x²) + eps) · w per row, as model.c computes it. */
static void rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps)
{
#pragma omp parallel for schedule(static)
	for (int i = 0; i < n; i++) {
		const float *xi = x + (size_t)i * d;
		float *oi = out + (size_t)i * d;
		double ss = 0;
		for (int j = 0; j < d; j++)
			ss += (double)xi[j] * xi[j];
		float r = (float)(1.0 / sqrt(ss / d + (double)eps));
		for (int j = 0; j < d; j++)
			oi[j] = xi[j] * r * w[j];
	}
}

/* Rotate-half RoPE of each row's heads at that row's own position. */
static void rope(float *x, int n, const int *pos, int heads, int hd, const float *cosb,
		 const float *sinb)
{
	int half = hd / 2;
#pragma omp parallel for schedule(static)
	for (int r = 0; r < n; r++) {
		const float *c = cosb + (size_t)pos[r] * half, *s = sinb + (size_t)pos[r] * half;
		for (int h = 0; h < heads; h++) {
			float *v = x + ((size_t)r * heads + h) * hd;
			for (int i = 0; i < half; i++) {
				float a = v[i], b = v[i + half];
				v[i] = a * c[i] - b * s[i];
				v[i + half] = b * c[i] + a * s[i];
			}
		}
	}
}

/* Attention of every segment's queries to its slot's cache, which already holds the segment's
 * own keys and values: query j of a segment (position pos + j) sees positions 0..pos + j.  Each
 * task is one segment and one query head; blocks of query rows keep the score matrix small. */
static void attention(struct llm_kv *kv, int l, int nseg, int H, int KV, int hd)
{
	int D = H * hd, KVD = kv->kvd, rep = H / KV, nctx = kv->n_ctx;
	float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1) num_threads(kv->att_threads)
	for (int task = 0; task < nseg * H; task++) {
		const struct segment *sg = &kv->seg[task / H];
		int h = task % H, g = h / rep;
		float *S = kv->att_scratch + (size_t)llm_thread_id() * ATT_BLOCK * nctx;
		const float *kb = cache_at(kv, kv->k, l, sg->slot) + g * hd;
		const float *vb = cache_at(kv, kv->v, l, sg->slot) + g * hd;
		const float *qb = kv->q + (size_t)sg->first * D + h * hd;
		float *ob = kv->att + (size_t)sg->first * D + h * hd;
		for (int r0 = 0; r0 < sg->n; r0 += ATT_BLOCK) {
			int r1 = r0 + ATT_BLOCK < sg->n ? r0 + ATT_BLOCK : sg->n;
			int keys = sg->pos + r1; /* the last row of the block sees this many */
			llm_matmul_serial(false, true, r1 - r0, keys, hd, scale,
					  qb + (size_t)r0 * D, D, kb, KVD, 0.0f, S, nctx);
			for (int t = r0; t < r1; t++) {
				float *row = S + (size_t)(t - r0) * nctx;
				int last = sg->pos + t;
				float mx = row[0];
				for (int j = 1; j <= last; j++)
					mx = row[j] > mx ? row[j] : mx;
				double sum = 0;
				for (int j = 0; j <= last; j++) {
					row[j] = expf(row[j] - mx);
					sum += row[j];
				}
				float inv = (float)(1.0 / sum);
				for (int j = 0; j <= last; j++)
					row[j] *= inv;
				for (int j = last + 1; j < keys; j++)
					row[j] = 0.0f;
			}
			llm_matmul_serial(false, false, r1 - r0, hd, keys, 1.0f, S, nctx, vb, KVD,
					  0.0f, ob + (size_t)r0 * D, D);
		}
	}
}

/* out = x · wᵀ (or out += when add): x (n, in), w (out_dim, in), out (n, out_dim).  A decode
 * step's few rows go to the kernel that streams the weight once for all of them: the step is
 * bound by reading the weights, and sgemm's packing of them for one or two rows costs more than
 * the arithmetic. */
static void linear(float *out, const float *x, const float *w, int n, int in, int out_dim, bool add)
{
	if (n > LLM_MATMUL_SMALL_M)
		llm_matmul(false, true, n, out_dim, in, 1.0f, x, in, w, in, add ? 1.0f : 0.0f, out,
			   out_dim);
	else
		llm_matmul_nt_small(n, out_dim, in, 1.0f, x, in, w, in, add ? 1.0f : 0.0f, out,
				    out_dim);
}

static inline float sigmoid(float x)
{
	return 1.0f / (1.0f + expf(-x));
}

/* Check the whole batch before touching the cache, so a failure leaves it as it was. */
static enum llm_err check_batch(struct llm_kv *kv, const struct llm_batch *b, struct llm_diag *diag)
{
	int V = kv->m->config.vocab_size;
	enum llm_err e = LLM_OK;
	memset(kv->pending, 0, (size_t)kv->n_slots * sizeof *kv->pending);
	for (size_t i = 0; i < b->n && !e; i++) {
		int s = b->slot[i];
		if (s < 0 || s >= kv->n_slots || kv->len[s] < 0)
			e = llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
					 "batch entry %zu: slot %d is not in use", i, s);
		else if (b->token[i] >= (uint32_t)V)
			e = llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
					 "batch entry %zu: token id %u is not below vocab_size %d",
					 i, b->token[i], V);
		else
			kv->pending[s]++;
	}
	for (int s = 0; s < kv->n_slots && !e; s++)
		if (kv->pending[s] && kv->len[s] + kv->pending[s] > kv->n_ctx)
			e = llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
					 "slot %d: %d cached tokens + %d new exceed the context "
					 "length %d",
					 s, kv->len[s], kv->pending[s], kv->n_ctx);
	return e;
}

enum llm_err llm_kv_eval(struct llm_kv *kv, struct llm_batch *b, struct llm_diag *diag)
{
	const struct llm_model *m = kv->m;
	const struct llm_model_config *c = &m->config;
	if (b->n == 0)
		return LLM_OK;
	if (b->n > (size_t)1 << 24)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "batch of %zu tokens is too large", b->n);
	enum llm_err e = check_batch(kv, b, diag);
	if (e || (e = ensure_scratch(kv, b->n, diag)))
		return e;
	int V = c->vocab_size;
	size_t need = b->n_logits * (size_t)V;
	if (need > b->logits_cap || !b->logits) {
		free(b->logits);
		b->logits_cap = 0;
		b->logits = malloc((need ? need : 1) * sizeof(float));
		if (!b->logits)
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0,
					    "out of memory for %zu rows of logits", b->n_logits);
		b->logits_cap = need;
	}
	b->n_vocab = V;

	int N = (int)b->n, D = c->hidden_size, F = c->intermediate_size;
	int H = c->num_attention_heads, KV = c->num_key_value_heads;
	int hd = llm_model_config_head_dim(c), KVD = kv->kvd;
	float eps = (float)c->rms_norm_eps;

	/* Positions and runs; kv->len advances only once the pass is done. */
	memset(kv->pending, 0, (size_t)kv->n_slots * sizeof *kv->pending);
	int nseg = 0, nout = 0;
	for (int i = 0; i < N; i++) {
		int s = b->slot[i];
		kv->pos[i] = kv->len[s] + kv->pending[s]++;
		if (nseg > 0 && kv->seg[nseg - 1].slot == s &&
		    kv->seg[nseg - 1].pos + kv->seg[nseg - 1].n == kv->pos[i]) {
			kv->seg[nseg - 1].n++;
		} else {
			kv->seg[nseg++] =
			    (struct segment){.slot = s, .first = i, .n = 1, .pos = kv->pos[i]};
		}
		if (b->row[i] >= 0)
			kv->out_idx[nout++] = i;
	}

#pragma omp parallel for schedule(static)
	for (int i = 0; i < N; i++)
		memcpy(kv->x + (size_t)i * D, m->w.embed + (size_t)b->token[i] * D,
		       (size_t)D * sizeof(float));

	for (int l = 0; l < c->num_hidden_layers; l++) {
		const struct llm_layer_weights *w = &m->w.layer[l];
		rmsnorm(kv->xn, kv->x, w->attn_norm, N, D, eps);
		linear(kv->q, kv->xn, w->wq, N, D, D, false);
		linear(kv->kk, kv->xn, w->wk, N, D, KVD, false);
		linear(kv->vv, kv->xn, w->wv, N, D, KVD, false);
		rope(kv->q, N, kv->pos, H, hd, m->rope_cos, m->rope_sin);
		rope(kv->kk, N, kv->pos, KV, hd, m->rope_cos, m->rope_sin);
		for (int i = 0; i < N; i++) {
			size_t at = (size_t)kv->pos[i] * KVD;
			memcpy(cache_at(kv, kv->k, l, b->slot[i]) + at, kv->kk + (size_t)i * KVD,
			       (size_t)KVD * sizeof(float));
			memcpy(cache_at(kv, kv->v, l, b->slot[i]) + at, kv->vv + (size_t)i * KVD,
			       (size_t)KVD * sizeof(float));
		}
		attention(kv, l, nseg, H, KV, hd);
		linear(kv->x, kv->att, w->wo, N, D, D, true);

		rmsnorm(kv->xn, kv->x, w->ffn_norm, N, D, eps);
		linear(kv->gate, kv->xn, w->w_gate, N, D, F, false);
		linear(kv->up, kv->xn, w->w_up, N, D, F, false);
		size_t nf = (size_t)N * F;
#pragma omp parallel for schedule(static)
		for (size_t i = 0; i < nf; i++)
			kv->gate[i] = kv->gate[i] * sigmoid(kv->gate[i]) * kv->up[i];
		linear(kv->x, kv->gate, w->w_down, N, F, D, true);
	}

	/* The head runs only on the rows whose logits are wanted: a prompt needs its last. */
	for (int r = 0; r < nout; r++)
		memcpy(kv->att + (size_t)r * D, kv->x + (size_t)kv->out_idx[r] * D,
		       (size_t)D * sizeof(float));
	if (nout > 0) {
		rmsnorm(kv->xn, kv->att, m->w.norm, nout, D, eps);
		linear(b->logits, kv->xn, m->w.lm_head, nout, D, V, false);
	}
	for (int s = 0; s < kv->n_slots; s++)
		kv->len[s] += kv->len[s] >= 0 ? kv->pending[s] : 0;
	return LLM_OK;
}

/* --- one request ---------------------------------------------------------------------------- */

const char *llm_finish_name(enum llm_finish f)
{
	switch (f) {
	case LLM_FINISH_STOP:
		return "stop";
	case LLM_FINISH_LENGTH:
		return "length";
	case LLM_FINISH_ABORT:
		return "abort";
	default:
		return "";
	}
}

void llm_gen_params_default(struct llm_gen_params *p)
{
	memset(p, 0, sizeof *p);
	llm_sampler_params_default(&p->sampler);
	p->max_tokens = 16;
}

void llm_gen_result_free(struct llm_gen_result *r)
{
	free(r->tokens);
	free(r->logprobs);
	llm_buf_free(&r->text);
	memset(r, 0, sizeof *r);
	r->stop_string = -1;
	r->stop_token = -1;
}

void llm_gen_seq_free(struct llm_gen_seq *s, bool keep_result)
{
	llm_sampler_free(&s->sampler);
	llm_stop_free(&s->stop);
	free(s->history);
	llm_buf_free(&s->bytes);
	llm_buf_free(&s->chars);
	llm_buf_free(&s->piece);
	if (!keep_result)
		llm_gen_result_free(&s->result);
	s->history = NULL;
}

enum llm_err llm_gen_seq_init(struct llm_gen_seq *s, const struct llm_gen_params *params,
			      const struct llm_model_config *config, const uint32_t *prompt,
			      size_t n_prompt, struct llm_diag *diag)
{
	memset(s, 0, sizeof *s);
	s->params = *params;
	s->config = config;
	llm_buf_init(&s->bytes, 0);
	llm_buf_init(&s->chars, 0);
	llm_buf_init(&s->piece, 0);
	llm_buf_init(&s->result.text, 0);
	s->result.stop_string = -1;
	s->result.stop_token = -1;
	s->result.n_prompt = n_prompt;
	if (params->max_tokens <= 0)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "max_tokens is %d; it must be at least 1", params->max_tokens);
	if (params->n_stop > 0 && !params->decode && !params->bpe)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "stop strings need a tokenizer to decode the text");
	enum llm_err e = llm_sampler_init(&s->sampler, &params->sampler, diag);
	if (e)
		return e;
	uint32_t eos = (uint32_t)config->eos_token_id;
	const uint32_t *st = params->stop_tokens;
	size_t nst = params->n_stop_tokens;
	if (!st || nst == 0) {
		bool use_eos = !params->ignore_eos && config->eos_token_id >= 0;
		st = use_eos ? &eos : NULL;
		nst = use_eos ? 1 : 0;
	}
	if ((e = llm_stop_init(&s->stop, params->stop, params->n_stop, st, nst, diag))) {
		llm_sampler_free(&s->sampler);
		return e;
	}
	/* The history holds what the penalties see: the prompt only when asked. */
	size_t np = params->penalize_prompt ? n_prompt : 0;
	s->history_cap = np + (size_t)params->max_tokens;
	s->history = malloc(s->history_cap * sizeof *s->history);
	s->result.tokens = malloc((size_t)params->max_tokens * sizeof *s->result.tokens);
	if (params->logprobs)
		s->result.logprobs =
		    malloc((size_t)params->max_tokens * sizeof(*s->result.logprobs));
	if (!s->history || !s->result.tokens || (params->logprobs && !s->result.logprobs)) {
		llm_gen_seq_free(s, false);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	if (np)
		memcpy(s->history, prompt, np * sizeof *prompt);
	s->n_history = s->n_history_prompt = np;
	return LLM_OK;
}

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Move the whole UTF-8 characters at the front of in to out.  Bytes that cannot be part of a
 * character become U+FFFD, one per maximal ill-formed run as the Unicode standard recommends;
 * a tail that may still become a character stays in in, unless final. */
static enum llm_err utf8_release(struct llm_buf *in, struct llm_buf *out, bool final)
{
	const unsigned char *s = (const unsigned char *)in->data;
	size_t n = in->len, i = 0;
	enum llm_err e = LLM_OK;
	while (i < n && !e) {
		unsigned c = s[i];
		size_t need = 0;
		unsigned lo = 0x80, hi = 0xBF; /* the range of the second byte */
		if (c < 0x80)
			need = 1;
		else if (c >= 0xC2 && c <= 0xDF)
			need = 2;
		else if (c >= 0xE0 && c <= 0xEF) {
			need = 3;
			lo = c == 0xE0 ? 0xA0 : 0x80;
			hi = c == 0xED ? 0x9F : 0xBF;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 4;
			lo = c == 0xF0 ? 0x90 : 0x80;
			hi = c == 0xF4 ? 0x8F : 0xBF;
		}
		if (need == 0) {
			e = llm_buf_append(out, replacement, 3);
			i++;
			continue;
		}
		size_t j = 1;
		for (; j < need && i + j < n; j++) {
			unsigned lo_j = j == 1 ? lo : 0x80, hi_j = j == 1 ? hi : 0xBF;
			if (s[i + j] < lo_j || s[i + j] > hi_j)
				break;
		}
		if (j == need) {
			e = llm_buf_append(out, s + i, need);
			i += need;
		} else if (i + j == n && !final) {
			break; /* may be completed by the next token */
		} else {
			e = llm_buf_append(out, replacement, 3);
			i += j;
		}
	}
	if (e)
		return e;
	if (!in->data) /* nothing was ever buffered (no decoder: tokens only) */
		return LLM_OK;
	memmove(in->data, in->data + i, n - i);
	in->len = n - i;
	in->data[in->len] = '\0';
	return LLM_OK;
}

/* Pass the decoded bytes through the UTF-8 filter and the stop matcher, and emit what comes
 * out.  final releases everything held back (generation ended without a stop string). */
static enum llm_err release_text(struct llm_gen_seq *s, bool final, bool *stopped, bool *keep_on)
{
	llm_buf_clear(&s->chars);
	llm_buf_clear(&s->piece);
	*stopped = false;
	*keep_on = true;
	enum llm_err e = utf8_release(&s->bytes, &s->chars, final);
	if (!e && s->chars.len)
		e = llm_stop_feed(&s->stop, s->chars.data, s->chars.len, &s->piece, stopped);
	if (!e && final && !*stopped)
		e = llm_stop_flush(&s->stop, &s->piece);
	if (!e && s->piece.len) {
		e = llm_buf_append(&s->result.text, s->piece.data, s->piece.len);
		if (!e && s->params.on_text)
			*keep_on =
			    s->params.on_text(s->params.on_text_ctx, s->piece.data, s->piece.len);
	}
	return e;
}

static enum llm_err decode_token(struct llm_gen_seq *s, uint32_t token, struct llm_diag *diag)
{
	if (s->params.decode)
		return s->params.decode(s->params.decode_ctx, &token, 1, &s->bytes, diag);
	if (s->params.bpe)
		return llm_bpe_decode(s->params.bpe, &token, 1, &s->bytes, diag);
	return LLM_OK;
}

static enum llm_err finish(struct llm_gen_seq *s, enum llm_finish why, bool *done,
			   struct llm_diag *diag)
{
	bool stopped, keep_on;
	enum llm_err e = release_text(s, true, &stopped, &keep_on);
	if (e)
		return llm_diag_set(diag, e, NULL, 0, "the generated text is too long");
	s->result.finish = why;
	if (stopped) {
		s->result.finish = LLM_FINISH_STOP;
		s->result.stop_string = (int)s->stop.which;
	}
	*done = true;
	return LLM_OK;
}

enum llm_err llm_gen_seq_next(struct llm_gen_seq *s, const float *logits, uint32_t *token,
			      bool *done, struct llm_diag *diag)
{
	*done = false;
	if (s->result.finish != LLM_FINISH_NONE) {
		*done = true;
		return LLM_OK;
	}
	struct llm_sample_result sr;
	uint32_t tok;
	enum llm_err e =
	    llm_sampler_next(&s->sampler, logits, (size_t)s->config->vocab_size, s->history,
			     s->n_history, &tok, s->params.logprobs ? &sr : NULL, diag);
	if (e)
		return e;
	*token = tok;
	if (llm_stop_is_token(&s->stop, tok)) {
		s->result.stop_token = tok;
		return finish(s, LLM_FINISH_STOP, done, diag);
	}
	size_t i = s->result.n_tokens++;
	s->result.tokens[i] = tok;
	if (s->params.logprobs)
		s->result.logprobs[i] = sr;
	s->history[s->n_history++] = tok;

	if ((e = decode_token(s, tok, diag)))
		return e;
	bool stopped, keep_on;
	if ((e = release_text(s, false, &stopped, &keep_on)))
		return llm_diag_set(diag, e, NULL, 0, "the generated text is too long");
	if (stopped) {
		s->result.finish = LLM_FINISH_STOP;
		s->result.stop_string = (int)s->stop.which;
		*done = true;
		return LLM_OK;
	}
	if (!keep_on) {
		s->result.finish = LLM_FINISH_ABORT;
		*done = true;
		return LLM_OK;
	}
	if (s->result.n_tokens >= (size_t)s->params.max_tokens)
		return finish(s, LLM_FINISH_LENGTH, done, diag);
	return LLM_OK;
}

/* Prompt tokens per evaluation: bounds the scratch (about 4 D + 2 F floats a token). */
#define PREFILL_CHUNK 512

enum llm_err llm_generate(const struct llm_model *m, const uint32_t *prompt, size_t n_prompt,
			  const struct llm_gen_params *params, struct llm_gen_result *out,
			  struct llm_diag *diag)
{
	memset(out, 0, sizeof *out);
	llm_buf_init(&out->text, 0);
	out->stop_string = -1;
	out->stop_token = -1;
	const struct llm_model_config *c = &m->config;
	if (n_prompt == 0)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "the prompt is empty");
	int n_ctx = params->n_ctx > 0 ? params->n_ctx : c->max_position_embeddings;
	if (n_ctx > c->max_position_embeddings)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "context length %d exceeds max_position_embeddings %d", n_ctx,
				    c->max_position_embeddings);
	if (params->max_tokens > 0 && n_prompt + (size_t)params->max_tokens > (size_t)n_ctx)
		return llm_diag_set(
		    diag, LLM_ERR_RANGE, NULL, 0,
		    "the prompt's %zu tokens plus max_tokens %d make %zu, more than "
		    "the context length %d",
		    n_prompt, params->max_tokens, n_prompt + (size_t)params->max_tokens, n_ctx);
	struct llm_gen_seq seq;
	enum llm_err e = llm_gen_seq_init(&seq, params, c, prompt, n_prompt, diag);
	if (e)
		return e;
	/* The last token chosen is never fed back, so the cache needs one position less. */
	struct llm_kv *kv = NULL;
	struct llm_batch b;
	llm_batch_init(&b);
	int slot = 0;
	e = llm_kv_new(&kv, m, 1, (int)n_prompt + params->max_tokens - 1, diag);
	if (!e)
		e = llm_kv_slot_new(kv, &slot, diag);
	for (size_t i = 0; i < n_prompt && !e; i += PREFILL_CHUNK) {
		size_t end = i + PREFILL_CHUNK < n_prompt ? i + PREFILL_CHUNK : n_prompt;
		llm_batch_clear(&b);
		for (size_t j = i; j < end && !e; j++)
			e = llm_batch_add(&b, slot, prompt[j], j + 1 == n_prompt, diag);
		if (!e)
			e = llm_kv_eval(kv, &b, diag);
	}
	bool done = false;
	while (!e) {
		uint32_t tok;
		e = llm_gen_seq_next(&seq, llm_batch_logits(&b, b.n - 1), &tok, &done, diag);
		if (e || done)
			break;
		llm_batch_clear(&b);
		if (!(e = llm_batch_add(&b, slot, tok, true, diag)))
			e = llm_kv_eval(kv, &b, diag);
	}
	llm_batch_free(&b);
	llm_kv_free(kv);
	*out = seq.result;
	llm_gen_seq_free(&seq, true);
	return e;
}

/* --- scoring -------------------------------------------------------------------------------- */

/* Positions per evaluation when scoring: every row's logits are kept, V floats each. */
#define SCORE_CHUNK 256

enum llm_err llm_score_tokens(const struct llm_model *m, const uint32_t *ids, size_t n, size_t from,
			      float *token_logprobs, struct llm_score *out, struct llm_diag *diag)
{
	memset(out, 0, sizeof *out);
	const struct llm_model_config *c = &m->config;
	if (from < 1 || from >= n)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "scoring tokens %zu..%zu of %zu: need 1 ≤ from < n", from, n,
				    n);
	if (n > (size_t)c->max_position_embeddings)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "%zu tokens exceed the context length %d (max_position_"
				    "embeddings)",
				    n, c->max_position_embeddings);
	if (token_logprobs)
		memset(token_logprobs, 0, n * sizeof *token_logprobs);
	struct llm_kv *kv = NULL;
	struct llm_batch b;
	llm_batch_init(&b);
	int slot = 0, V = c->vocab_size;
	double total = 0;
	/* The last token predicts nothing, so it need not be evaluated. */
	enum llm_err e = llm_kv_new(&kv, m, 1, (int)n - 1, diag);
	if (!e)
		e = llm_kv_slot_new(kv, &slot, diag);
	for (size_t i = 0; i + 1 < n && !e; i += SCORE_CHUNK) {
		size_t end = i + SCORE_CHUNK < n - 1 ? i + SCORE_CHUNK : n - 1;
		llm_batch_clear(&b);
		for (size_t j = i; j < end && !e; j++) {
			if (ids[j + 1] >= (uint32_t)V)
				e = llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
						 "token %zu: id %u is not below vocab_size %d",
						 j + 1, ids[j + 1], V);
			else
				e = llm_batch_add(&b, slot, ids[j], j + 1 >= from, diag);
		}
		if (e || (e = llm_kv_eval(kv, &b, diag)))
			break;
		/* As model.c's cross-entropy: lse = max + log Σ exp(x − max). */
		for (size_t j = i; j < end; j++) {
			const float *row = llm_batch_logits(&b, j - i);
			if (!row)
				continue;
			float mx = row[0];
			for (int k = 1; k < V; k++)
				mx = row[k] > mx ? row[k] : mx;
			double sum = 0;
			for (int k = 0; k < V; k++)
				sum += expf(row[k] - mx);
			float lp = row[ids[j + 1]] - (mx + (float)log(sum));
			total += lp;
			if (token_logprobs)
				token_logprobs[j + 1] = lp;
		}
	}
	llm_batch_free(&b);
	llm_kv_free(kv);
	if (e)
		return e;
	out->sum_logprob = total;
	out->n_scored = n - from;
	out->mean_logprob = total / (double)out->n_scored;
	out->perplexity = exp(-out->mean_logprob);
	return LLM_OK;
}
