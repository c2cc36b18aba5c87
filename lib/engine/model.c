/* The Llama decoder: parameter layout, forward pass, backward pass.
 *
 * Read top to bottom: the tensor table (names, shapes, offsets), allocation, then each layer as
 * a forward and a backward function over plain float arrays, then the model's forward and
 * backward that chain them.  The backward functions accumulate (+=) into parameter gradients and
 * either set or accumulate input gradients as each one's comment says.
 *
 * LoRA (engine/lora.h) hooks in at the linear layers: forward adds scale · B (A x) after a
 * targeted Linear, backward computes the adapters' gradients there, and with adapters attached
 * the base weights are frozen, so the backward functions get NULL for their weight gradients
 * and skip those products. */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rand.h"
#include "engine/lora.h"
#include "engine/matmul.h"
#include "engine/vmath.h"
#include "engine/model.h"

/* --- the tensor table ----------------------------------------------------------------------- */

/* Per layer, in the order transformers' state_dict lists them; the memory layout follows it. */
enum layer_tensor {
	LT_Q,
	LT_K,
	LT_V,
	LT_O,
	LT_GATE,
	LT_UP,
	LT_DOWN,
	LT_ATTN_NORM,
	LT_FFN_NORM,
	LT__COUNT
};

static const char *const layer_names[LT__COUNT] = {
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight", "mlp.gate_proj.weight",	  "mlp.up_proj.weight",
    "mlp.down_proj.weight",    "input_layernorm.weight",  "post_attention_layernorm.weight",
};

struct tensor_desc {
	char name[96];
	int ndim;
	int64_t shape[2];
	size_t offset; /* floats from the start of the allocation */
	size_t numel;
	int layer; /* -1 for the embedding, final norm and head */
	int which; /* enum layer_tensor for a layer tensor */
};

static size_t param_count(const struct llm_model_config *c)
{
	return 2 + (size_t)LT__COUNT * c->num_hidden_layers + (c->tie_word_embeddings ? 0 : 1);
}

static void layer_shape(const struct llm_model_config *c, int which, int64_t shape[2], int *ndim)
{
	int64_t d = c->hidden_size, f = c->intermediate_size;
	int64_t kv = (int64_t)llm_model_config_head_dim(c) * c->num_key_value_heads;
	static const int two_d[LT__COUNT] = {1, 1, 1, 1, 1, 1, 1, 0, 0};
	const int64_t rows[LT__COUNT] = {d, kv, kv, d, f, f, d, d, d};
	const int64_t cols[LT__COUNT] = {d, d, d, d, d, d, f, 1, 1};
	*ndim = two_d[which] ? 2 : 1;
	shape[0] = rows[which];
	shape[1] = two_d[which] ? cols[which] : 1;
}

/* Everything about tensor i; the single source for names, shapes and the memory layout. */
static void describe(const struct llm_model_config *c, size_t i, struct tensor_desc *t)
{
	size_t d = (size_t)c->hidden_size, v = (size_t)c->vocab_size;
	size_t layer_floats = 0;
	for (int w = 0; w < LT__COUNT; w++) {
		int64_t s[2];
		int nd;
		layer_shape(c, w, s, &nd);
		layer_floats += (size_t)(s[0] * s[1]);
	}
	size_t nl = (size_t)c->num_hidden_layers;
	t->layer = -1;
	t->which = -1;
	if (i == 0) {
		snprintf(t->name, sizeof t->name, "model.embed_tokens.weight");
		t->ndim = 2, t->shape[0] = (int64_t)v, t->shape[1] = (int64_t)d, t->offset = 0;
	} else if (i <= nl * LT__COUNT) {
		size_t l = (i - 1) / LT__COUNT, w = (i - 1) % LT__COUNT;
		snprintf(t->name, sizeof t->name, "model.layers.%zu.%s", l, layer_names[w]);
		layer_shape(c, (int)w, t->shape, &t->ndim);
		t->offset = v * d + l * layer_floats;
		for (size_t k = 0; k < w; k++) {
			int64_t s[2];
			int nd;
			layer_shape(c, (int)k, s, &nd);
			t->offset += (size_t)(s[0] * s[1]);
		}
		t->layer = (int)l;
		t->which = (int)w;
	} else if (i == nl * LT__COUNT + 1) {
		snprintf(t->name, sizeof t->name, "model.norm.weight");
		t->ndim = 1, t->shape[0] = (int64_t)d, t->shape[1] = 1;
		t->offset = v * d + nl * layer_floats;
	} else {
		snprintf(t->name, sizeof t->name, "lm_head.weight");
		t->ndim = 2, t->shape[0] = (int64_t)v, t->shape[1] = (int64_t)d;
		t->offset = v * d + nl * layer_floats + d;
	}
	t->numel = (size_t)(t->shape[0] * t->shape[1]);
}

/* Point the views of w into base (params or grads). */
static void set_views(const struct llm_model_config *c, float *base, struct llm_weights *w)
{
	size_t n = param_count(c);
	for (size_t i = 0; i < n; i++) {
		struct tensor_desc t;
		describe(c, i, &t);
		float *p = base + t.offset;
		if (i == 0) {
			w->embed = p;
		} else if (t.layer >= 0) {
			struct llm_layer_weights *l = &w->layer[t.layer];
			float **slot[LT__COUNT] = {&l->wq,     &l->wk,	      &l->wv,
						   &l->wo,     &l->w_gate,    &l->w_up,
						   &l->w_down, &l->attn_norm, &l->ffn_norm};
			*slot[t.which] = p;
		} else if (strcmp(t.name, "model.norm.weight") == 0) {
			w->norm = p;
		} else {
			w->lm_head = p;
		}
	}
	if (c->tie_word_embeddings)
		w->lm_head = w->embed;
}

size_t llm_model_param_count(const struct llm_model *m)
{
	return param_count(&m->config);
}

void llm_model_param(const struct llm_model *m, size_t i, struct llm_param *out)
{
	struct tensor_desc t;
	describe(&m->config, i, &t);
	memcpy(out->name, t.name, sizeof out->name);
	out->ndim = t.ndim;
	out->shape[0] = t.shape[0];
	out->shape[1] = t.ndim == 2 ? t.shape[1] : 0;
	out->numel = t.numel;
	out->data = m->params + t.offset;
	out->grad = m->grads ? m->grads + t.offset : NULL;
}

long llm_model_param_find(const struct llm_model *m, const char *name)
{
	size_t n = param_count(&m->config);
	for (size_t i = 0; i < n; i++) {
		struct tensor_desc t;
		describe(&m->config, i, &t);
		if (strcmp(t.name, name) == 0)
			return (long)i;
	}
	return -1;
}

/* --- activations ---------------------------------------------------------------------------- */

/* What one layer's forward pass keeps for its backward pass. */
struct layer_acts {
	float *xn1, *rstd1;   /* attention input after RMSNorm (N, D); 1/rms per token (N) */
	float *q, *k, *v;     /* after rotary embedding: (N, D), (N, KV), (N, KV) */
	float *lse;	      /* attention log-sum-exp per (sequence, head, row): (B, H, T) */
	float *att;	      /* attention output before o_proj (N, D) */
	float *res_mid;	      /* the residual stream after attention (N, D) */
	float *xn2, *rstd2;   /* MLP input after RMSNorm */
	float *gate, *up, *h; /* (N, F) each; h = silu(gate) · up */
};

struct llm_acts {
	float *mem;
	size_t cap;    /* floats in mem */
	uint32_t *tok; /* tokens, targets, then each token's position in its document: 3 N */
	const uint32_t *pos; /* into tok when the last forward was packed, else NULL */
	size_t tok_cap;
	int B, T, nthreads;
	bool ready_for_backward;

	float *res; /* the residual stream entering each layer and leaving the last: (L+1, N, D) */
	struct layer_acts *layer;
	float *xnf, *rstdf; /* final RMSNorm */
	float *lse;	    /* log-sum-exp of each position's logits (N) */
	float *wt;	    /* each target's share of the loss: w / Σw (N) */
	float *logits;	    /* (N, V) */

	/* backward scratch */
	float *dres, *dx, *datt, *dq, *dk, *dv, *dh, *dgate, *dup;
	float *scratch; /* 2 T² per thread for attention */

	/* LoRA: each adapter's A x (N, r), adapter by adapter, and the backward's (N, r)
	 * scratch.  lora and lora_floats record the adapters the last forward pass laid out, so
	 * backward refuses when they were attached or detached in between. */
	float *lora_u, *lora_du;
	const struct llm_lora *lora;
	size_t lora_floats; /* per token: r for each adapter and one more r for lora_du */
};

/* Lay the activations for (B, T) out from base, or only count them when base is NULL.  Each
 * array starts on a 64-byte boundary. */
static size_t layout_acts(const struct llm_model_config *c, int B, int T, int nthreads,
			  size_t lora_floats, float *base, struct llm_acts *a)
{
	size_t n = (size_t)B * T, d = (size_t)c->hidden_size, f = (size_t)c->intermediate_size;
	size_t kv = (size_t)llm_model_config_head_dim(c) * c->num_key_value_heads;
	size_t h = (size_t)c->num_attention_heads, v = (size_t)c->vocab_size;
	size_t off = 0;
#define TAKE(ptr, count)                                                                           \
	do {                                                                                       \
		(ptr) = base ? base + off : NULL;                                                  \
		off += ((size_t)(count) + 15) / 16 * 16;                                           \
	} while (0)
	TAKE(a->res, (c->num_hidden_layers + 1) * n * d);
	for (int l = 0; l < c->num_hidden_layers; l++) {
		struct layer_acts *la = &a->layer[l];
		TAKE(la->xn1, n * d);
		TAKE(la->rstd1, n);
		TAKE(la->q, n * d);
		TAKE(la->k, n * kv);
		TAKE(la->v, n * kv);
		TAKE(la->lse, n * h);
		TAKE(la->att, n * d);
		TAKE(la->res_mid, n * d);
		TAKE(la->xn2, n * d);
		TAKE(la->rstd2, n);
		TAKE(la->gate, n * f);
		TAKE(la->up, n * f);
		TAKE(la->h, n * f);
	}
	TAKE(a->xnf, n * d);
	TAKE(a->rstdf, n);
	TAKE(a->lse, n);
	TAKE(a->wt, n);
	TAKE(a->logits, n * v);
	TAKE(a->dres, n * d);
	TAKE(a->dx, n * d);
	TAKE(a->datt, n * d);
	TAKE(a->dq, n * d);
	TAKE(a->dk, n * kv);
	TAKE(a->dv, n * kv);
	TAKE(a->dh, n * f);
	TAKE(a->dgate, n * f);
	TAKE(a->dup, n * f);
	TAKE(a->scratch, (size_t)nthreads * 2 * T * T);
	TAKE(a->lora_u, n * lora_floats);
#undef TAKE
	return off;
}

static enum llm_err ensure_acts(struct llm_model *m, int B, int T, struct llm_diag *diag)
{
	struct llm_acts *a = m->acts;
	int nt = llm_threads_max();
	const struct llm_lora *lo = m->lora;
	size_t lora_floats = lo ? (lo->n_adapters + 1) * (size_t)lo->config.r : 0;
	size_t need = layout_acts(&m->config, B, T, nt, lora_floats, NULL, a);
	if (need > a->cap) {
		free(a->mem);
		a->cap = 0;
		a->mem = aligned_alloc(64, need * sizeof(float));
		if (!a->mem)
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0,
					    "out of memory for activations (%zu MB)",
					    need * sizeof(float) >> 20);
		a->cap = need;
	}
	size_t ntok = 3 * (size_t)B * T;
	if (ntok > a->tok_cap) {
		free(a->tok);
		a->tok_cap = 0;
		a->tok = malloc(ntok * sizeof *a->tok);
		if (!a->tok)
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		a->tok_cap = ntok;
	}
	layout_acts(&m->config, B, T, nt, lora_floats, a->mem, a);
	a->B = B, a->T = T, a->nthreads = nt;
	a->lora = lo;
	a->lora_floats = lora_floats;
	a->lora_du = lo ? a->lora_u + (size_t)B * T * lo->n_adapters * lo->config.r : NULL;
	m->logits = a->logits;
	return LLM_OK;
}

/* --- allocation ----------------------------------------------------------------------------- */

/* The rotary tables as transformers computes them, in float32 step by step: inv_freq =
 * 1 / θ^(2i/d) rounded to float, the angle pos · inv_freq rounded to float, then cos and sin.
 * Rounding the same way keeps the engine within float precision of PyTorch at long positions. */
static void rope_tables(const struct llm_model_config *c, float *cosb, float *sinb)
{
	int hd = llm_model_config_head_dim(c), half = hd / 2;
	for (int i = 0; i < half; i++) {
		float expo = (float)(2 * i) / (float)hd;
		float inv = (float)(1.0 / pow((double)(float)c->rope_theta, (double)expo));
		for (int p = 0; p < c->max_position_embeddings; p++) {
			float ang = (float)p * inv;
			cosb[(size_t)p * half + i] = (float)cos((double)ang);
			sinb[(size_t)p * half + i] = (float)sin((double)ang);
		}
	}
}

enum llm_err llm_model_new(struct llm_model **out, const struct llm_model_config *config,
			   struct llm_diag *diag)
{
	*out = NULL;
	enum llm_err e = llm_model_config_check(config, NULL, diag);
	if (e)
		return e;
	struct llm_model *m = calloc(1, sizeof *m);
	if (!m)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	m->config = *config;
	m->num_params = llm_model_config_num_params(config);
	int nl = config->num_hidden_layers;
	size_t rope =
	    (size_t)config->max_position_embeddings * llm_model_config_head_dim(config) / 2;
	m->params = aligned_alloc(64, (m->num_params * sizeof(float) + 63) / 64 * 64);
	m->w.layer = calloc((size_t)nl, sizeof *m->w.layer);
	m->g.layer = calloc((size_t)nl, sizeof *m->g.layer);
	m->acts = calloc(1, sizeof *m->acts);
	if (m->acts)
		m->acts->layer = calloc((size_t)nl, sizeof *m->acts->layer);
	m->rope_cos = malloc(rope * sizeof(float));
	m->rope_sin = malloc(rope * sizeof(float));
	if (!m->params || !m->w.layer || !m->g.layer || !m->acts || !m->acts->layer ||
	    !m->rope_cos || !m->rope_sin) {
		llm_model_free(m);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0,
				    "out of memory for a model of %zu parameters", m->num_params);
	}
	memset(m->params, 0, m->num_params * sizeof(float));
	set_views(config, m->params, &m->w);
	rope_tables(config, m->rope_cos, m->rope_sin);
	*out = m;
	return LLM_OK;
}

void llm_model_free(struct llm_model *m)
{
	if (!m)
		return;
	llm_lora_detach(m);
	free(m->params);
	free(m->grads);
	free(m->w.layer);
	free(m->g.layer);
	if (m->acts) {
		free(m->acts->mem);
		free(m->acts->tok);
		free(m->acts->layer);
		free(m->acts);
	}
	free(m->rope_cos);
	free(m->rope_sin);
	free(m);
}

static enum llm_err ensure_grads(struct llm_model *m, struct llm_diag *diag)
{
	if (m->grads)
		return LLM_OK;
	m->grads = aligned_alloc(64, (m->num_params * sizeof(float) + 63) / 64 * 64);
	if (!m->grads)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0,
				    "out of memory for the gradients of %zu parameters",
				    m->num_params);
	memset(m->grads, 0, m->num_params * sizeof(float));
	set_views(&m->config, m->grads, &m->g);
	return LLM_OK;
}

enum llm_err llm_model_zero_grad(struct llm_model *m, struct llm_diag *diag)
{
	enum llm_err e = ensure_grads(m, diag);
	if (e)
		return e;
	memset(m->grads, 0, m->num_params * sizeof(float));
	llm_lora_zero_grad(m);
	return LLM_OK;
}

/* Box–Muller on the seeded generator: the same seed gives the same weights everywhere. */
static double gaussian(struct llm_rand *r, double *spare, bool *have_spare)
{
	if (*have_spare) {
		*have_spare = false;
		return *spare;
	}
	double u1 = 1.0 - llm_rand_double(r); /* (0, 1]: log is finite */
	double u2 = llm_rand_double(r);
	double rad = sqrt(-2.0 * log(u1));
	*spare = rad * sin(2.0 * M_PI * u2);
	*have_spare = true;
	return rad * cos(2.0 * M_PI * u2);
}

void llm_model_init_random(struct llm_model *m, uint64_t seed, float std)
{
	struct llm_rand r;
	llm_rand_seed(&r, seed);
	double spare = 0;
	bool have_spare = false;
	size_t n = param_count(&m->config);
	for (size_t i = 0; i < n; i++) {
		struct tensor_desc t;
		describe(&m->config, i, &t);
		float *p = m->params + t.offset;
		bool norm = t.ndim == 1;
		for (size_t j = 0; j < t.numel; j++)
			p[j] = norm ? 1.0f : (float)(std * gaussian(&r, &spare, &have_spare));
	}
}

/* --- layers: forward and backward ----------------------------------------------------------- */

/* out = x · wᵀ: x (n, in), w (out_dim, in). */
static void linear_forward(float *out, const float *x, const float *w, int n, int in, int out_dim)
{
	llm_matmul(false, true, n, out_dim, in, 1.0f, x, in, w, in, 0.0f, out, out_dim);
}

/* dw += doutᵀ · x; dx = dout · w, or dx += when accumulate.  A NULL dw (a frozen weight) or dx
 * (nothing below needs it) skips that product. */
static void linear_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
			    int n, int in, int out_dim, bool accumulate)
{
	if (dw)
		llm_matmul(true, false, out_dim, in, n, 1.0f, dout, out_dim, x, in, 1.0f, dw, in);
	if (dx)
		llm_matmul(false, false, n, in, out_dim, 1.0f, dout, out_dim, w, in,
			   accumulate ? 1.0f : 0.0f, dx, in);
}

/* LoRA on a Linear with input x (n, in) and output y (n, out): u = x Aᵀ (n, r) is kept for
 * backward, then y += scale · u Bᵀ. */
static void lora_forward(float *y, float *u, const float *x, const struct llm_lora_adapter *ad,
			 int r, float scale, int n)
{
	llm_matmul(false, true, n, r, ad->in, 1.0f, x, ad->in, ad->a, ad->in, 0.0f, u, r);
	llm_matmul(false, true, n, ad->out, r, scale, u, r, ad->b, r, 1.0f, y, ad->out);
}

/* From dy (n, out): dB += scale · dyᵀ u, du = scale · dy B, dA += duᵀ x, and dx += du A when
 * dx is not NULL.  du is (n, r) scratch. */
static void lora_backward(float *dx, const float *dy, const float *x, const float *u, float *du,
			  const struct llm_lora_adapter *ad, int r, float scale, int n)
{
	llm_matmul(true, false, ad->out, r, n, scale, dy, ad->out, u, r, 1.0f, ad->db, r);
	llm_matmul(false, false, n, r, ad->out, scale, dy, ad->out, ad->b, r, 0.0f, du, r);
	llm_matmul(true, false, r, ad->in, n, 1.0f, du, r, x, ad->in, 1.0f, ad->da, ad->in);
	if (dx)
		llm_matmul(false, false, n, ad->in, r, 1.0f, du, r, ad->a, ad->in, 1.0f, dx,
			   ad->in);
}

/* out = x · rsqrt(mean(x²) + eps) · w, per row of d; rstd keeps the factor for backward. */
static void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int n, int d,
			    float eps)
{
#pragma omp parallel for schedule(static)
	for (int i = 0; i < n; i++) {
		const float *xi = x + (size_t)i * d;
		float *oi = out + (size_t)i * d;
		double ss = 0;
		for (int j = 0; j < d; j++)
			ss += (double)xi[j] * xi[j];
		float r = (float)(1.0 / sqrt(ss / d + (double)eps));
		rstd[i] = r;
		for (int j = 0; j < d; j++)
			oi[j] = xi[j] * r * w[j];
	}
}

/* dx += rstd · (g − x̂ · mean(g · x̂)) with g = dout · w and x̂ = x · rstd; dw += Σ dout · x̂
 * unless dw is NULL (frozen). */
static void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
			     const float *rstd, const float *w, int n, int d)
{
#pragma omp parallel for schedule(static)
	for (int i = 0; i < n; i++) {
		const float *xi = x + (size_t)i * d, *gi = dout + (size_t)i * d;
		float *dxi = dx + (size_t)i * d;
		float r = rstd[i];
		double dot = 0;
		for (int j = 0; j < d; j++)
			dot += (double)gi[j] * w[j] * xi[j] * r;
		float mean = (float)(dot / d);
		for (int j = 0; j < d; j++)
			dxi[j] += r * (gi[j] * w[j] - xi[j] * r * mean);
	}
	/* The weight gradient, unless frozen, sums over tokens: split the columns among threads
	 * so no two threads add to the same entry. */
	if (!dw)
		return;
#pragma omp parallel
	{
		int j0, j1;
		llm_thread_share(d, &j0, &j1);
		for (int i = 0; i < n; i++) {
			const float *xi = x + (size_t)i * d, *gi = dout + (size_t)i * d;
			float r = rstd[i];
			for (int j = j0; j < j1; j++)
				dw[j] += gi[j] * xi[j] * r;
		}
	}
}

/* Rotate each head's halves: x[i] and x[i + half] by the angle of (position, i).  rows of
 * heads·hd floats; the position of row r is pos[r], or r mod T when pos is NULL.  inverse
 * rotates back, which is the backward pass (the rotation is orthogonal). */
static void rope_apply(float *x, int n, int T, int heads, int hd, const float *cosb,
		       const float *sinb, const uint32_t *pos, bool inverse)
{
	int half = hd / 2;
	float sgn = inverse ? -1.0f : 1.0f;
#pragma omp parallel for schedule(static)
	for (int r = 0; r < n; r++) {
		size_t p = pos ? pos[r] : (size_t)(r % T);
		const float *c = cosb + p * half, *s = sinb + p * half;
		for (int h = 0; h < heads; h++) {
			float *v = x + ((size_t)r * heads + h) * hd;
			for (int i = 0; i < half; i++) {
				float a = v[i], b = v[i + half], si = sgn * s[i];
				v[i] = a * c[i] - b * si;
				v[i + half] = b * c[i] + a * si;
			}
		}
	}
}

/* Causal attention is computed in blocks of query rows; block r0..r1 sees keys 0..r1, so the
 * products skip most of the masked upper triangle.  In a packed row (pos not NULL) query t sees
 * only the keys of its own document, t − pos[t] .. t, and a block's products start at the
 * first key any of its rows sees. */
#define ATT_BLOCK 64

/* The first key row t sees, and the first any row of r0..r1 sees. */
static inline int att_first(const uint32_t *pos, int t)
{
	return pos ? t - (int)pos[t] : 0;
}

static int att_block_first(const uint32_t *pos, int r0, int r1)
{
	int c0 = r0;
	for (int t = r0; t < r1; t++)
		if (att_first(pos, t) < c0)
			c0 = att_first(pos, t);
	return c0;
}

/* att = softmax(q kᵀ / √hd, causal) · v for each sequence and query head; the key/value head
 * of query head h is h / (H / KV), as transformers' repeat_kv arranges them.  lse keeps each
 * row's log-sum-exp so backward can recompute the probabilities instead of storing B·H·T². */
static void attention_forward(float *att, float *lse, const float *q, const float *k,
			      const float *v, const uint32_t *pos, int B, int T, int H, int KV,
			      int hd, float *scratch, int nthreads)
{
	int D = H * hd, KVD = KV * hd, rep = H / KV;
	float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
	for (int bh = 0; bh < B * H; bh++) {
		int b = bh / H, h = bh % H, g = h / rep;
		float *S = scratch + (size_t)llm_thread_id() * 2 * T * T;
		const float *qb = q + (size_t)b * T * D + h * hd;
		const float *kb = k + (size_t)b * T * KVD + g * hd;
		const float *vb = v + (size_t)b * T * KVD + g * hd;
		float *ob = att + (size_t)b * T * D + h * hd;
		float *lb = lse + ((size_t)b * H + h) * T;
		const uint32_t *pb = pos ? pos + (size_t)b * T : NULL;
		for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
			int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T;
			int c0 = att_block_first(pb, r0, r1);
			float *Sb = S + (size_t)r0 * T + c0;
			llm_matmul_serial(false, true, r1 - r0, r1 - c0, hd, scale,
					  qb + (size_t)r0 * D, D, kb + (size_t)c0 * KVD, KVD, 0.0f,
					  Sb, T);
			for (int t = r0; t < r1; t++) {
				float *row = S + (size_t)t * T;
				int j0 = att_first(pb, t);
				float mx = row[j0];
				for (int j = j0 + 1; j <= t; j++)
					mx = row[j] > mx ? row[j] : mx;
				float sum = 0;
#pragma omp simd reduction(+ : sum)
				for (int j = j0; j <= t; j++) {
					row[j] = llm_expf(row[j] - mx);
					sum += row[j];
				}
				float inv = (float)(1.0 / sum);
				for (int j = j0; j <= t; j++)
					row[j] *= inv;
				for (int j = c0; j < j0; j++)
					row[j] = 0.0f;
				for (int j = t + 1; j < r1; j++)
					row[j] = 0.0f;
				lb[t] = mx + (float)log(sum);
			}
			llm_matmul_serial(false, false, r1 - r0, hd, r1 - c0, 1.0f, Sb, T,
					  vb + (size_t)c0 * KVD, KVD, 0.0f, ob + (size_t)r0 * D, D);
		}
	}
}

/* From datt (the gradient at att) set dq, dk and dv.  Each task is one sequence and one
 * key/value head with its group of query heads, so the heads that share dk and dv add to them
 * on one thread.  With P the probabilities and dP = datt · vᵀ: dS = P ⊙ (dP − rowsum(P ⊙ dP)),
 * dq = dS · k / √hd, dk += dSᵀ · q / √hd, dv += Pᵀ · datt. */
static void attention_backward(float *dq, float *dk, float *dv, const float *datt, const float *q,
			       const float *k, const float *v, const float *lse,
			       const uint32_t *pos, int B, int T, int H, int KV, int hd,
			       float *scratch, int nthreads)
{
	int D = H * hd, KVD = KV * hd, rep = H / KV;
	float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
	for (int bg = 0; bg < B * KV; bg++) {
		int b = bg / KV, g = bg % KV;
		float *P = scratch + (size_t)llm_thread_id() * 2 * T * T;
		float *dP = P + (size_t)T * T;
		const float *kb = k + (size_t)b * T * KVD + g * hd;
		const float *vb = v + (size_t)b * T * KVD + g * hd;
		float *dkb = dk + (size_t)b * T * KVD + g * hd;
		float *dvb = dv + (size_t)b * T * KVD + g * hd;
		const uint32_t *pb = pos ? pos + (size_t)b * T : NULL;
		for (int t = 0; t < T; t++) {
			memset(dkb + (size_t)t * KVD, 0, (size_t)hd * sizeof(float));
			memset(dvb + (size_t)t * KVD, 0, (size_t)hd * sizeof(float));
		}
		for (int h = g * rep; h < (g + 1) * rep; h++) {
			const float *qb = q + (size_t)b * T * D + h * hd;
			const float *dob = datt + (size_t)b * T * D + h * hd;
			float *dqb = dq + (size_t)b * T * D + h * hd;
			const float *lb = lse + ((size_t)b * H + h) * T;
			for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
				int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, m = r1 - r0;
				int c0 = att_block_first(pb, r0, r1), w = r1 - c0;
				float *Pb = P + (size_t)r0 * T + c0, *dPb = dP + (size_t)r0 * T + c0;
				const float *qr = qb + (size_t)r0 * D, *dor = dob + (size_t)r0 * D;
				const float *kc = kb + (size_t)c0 * KVD, *vc = vb + (size_t)c0 * KVD;
				llm_matmul_serial(false, true, m, w, hd, scale, qr, D, kc, KVD, 0.0f,
						  Pb, T);
				llm_matmul_serial(false, true, m, w, hd, 1.0f, dor, D, vc, KVD, 0.0f,
						  dPb, T);
				for (int t = r0; t < r1; t++) {
					float *p = P + (size_t)t * T, *dp = dP + (size_t)t * T;
					int j0 = att_first(pb, t);
					float dot = 0, l = lb[t];
#pragma omp simd reduction(+ : dot)
					for (int j = j0; j <= t; j++) {
						p[j] = llm_expf(p[j] - l);
						dot += p[j] * dp[j];
					}
					for (int j = j0; j <= t; j++)
						dp[j] = p[j] * (dp[j] - (float)dot);
					for (int j = c0; j < j0; j++)
						p[j] = dp[j] = 0.0f;
					for (int j = t + 1; j < r1; j++)
						p[j] = dp[j] = 0.0f;
				}
				llm_matmul_serial(true, false, w, hd, m, 1.0f, Pb, T, dor, D, 1.0f,
						  dvb + (size_t)c0 * KVD, KVD);
				llm_matmul_serial(false, false, m, hd, w, scale, dPb, T, kc, KVD,
						  0.0f, dqb + (size_t)r0 * D, D);
				llm_matmul_serial(true, false, w, hd, m, scale, dPb, T, qr, D, 1.0f,
						  dkb + (size_t)c0 * KVD, KVD);
			}
		}
	}
}

static inline float sigmoid(float x)
{
	return 1.0f / (1.0f + llm_expf(-x));
}

/* h = silu(gate) · up. */
static void swiglu_forward(float *h, const float *gate, const float *up, size_t n)
{
#pragma omp parallel for simd schedule(static)
	for (size_t i = 0; i < n; i++)
		h[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

/* From dh set dgate and dup; silu'(g) = σ(g) (1 + g (1 − σ(g))). */
static void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate,
			    const float *up, size_t n)
{
#pragma omp parallel for simd schedule(static)
	for (size_t i = 0; i < n; i++) {
		float g = gate[i], s = sigmoid(g);
		dup[i] = dh[i] * g * s;
		dgate[i] = dh[i] * up[i] * s * (1.0f + g * (1.0f - s));
	}
}

/* The adapter on Linear t of layer l and where its u lives, or NULL when t is not adapted. */
static const struct llm_lora_adapter *adapter_at(const struct llm_model *m, int l,
						 enum llm_lora_target t, float **u)
{
	const struct llm_lora *lo = m->lora;
	if (!lo)
		return NULL;
	const struct llm_lora_adapter *ad = lo->slot[(size_t)l * LLM_LORA__COUNT + t];
	if (ad)
		*u = m->acts->lora_u +
		     (size_t)(ad - lo->adapter) * m->acts->B * m->acts->T * lo->config.r;
	return ad;
}

/* Add the adapter's term, if Linear t of layer l has one, to its output y (N rows). */
static void lora_add(struct llm_model *m, int l, enum llm_lora_target t, float *y, const float *x,
		     int N)
{
	float *u;
	const struct llm_lora_adapter *ad = adapter_at(m, l, t, &u);
	if (ad)
		lora_forward(y, u, x, ad, m->lora->config.r, m->lora->scale, N);
}

/* The adapter's backward, if Linear t of layer l has one: its gradients, and dx += its share. */
static void lora_grad(struct llm_model *m, int l, enum llm_lora_target t, float *dx,
		      const float *dy, const float *x, int N)
{
	float *u;
	const struct llm_lora_adapter *ad = adapter_at(m, l, t, &u);
	if (ad)
		lora_backward(dx, dy, x, u, m->acts->lora_du, ad, m->lora->config.r, m->lora->scale,
			      N);
}

/* --- the model ------------------------------------------------------------------------------ */

static enum llm_err check_ids(const uint32_t *ids, size_t n, int vocab, const char *what,
			      struct llm_diag *diag)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] >= (uint32_t)vocab)
			return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
					    "%s %zu: id %u is not below vocab_size %d", what, i,
					    ids[i], vocab);
	return LLM_OK;
}

/* The mean cross-entropy of the logits against targets, weighted by mask; keeps each row's
 * log-sum-exp and each target's share of the loss for backward. */
static float cross_entropy(struct llm_acts *a, const uint32_t *targets, const float *mask, size_t n,
			   int V)
{
	double wsum = 0;
	for (size_t i = 0; i < n; i++)
		wsum += mask ? mask[i] : 1.0f;
	double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
	for (size_t i = 0; i < n; i++) {
		const float *row = a->logits + i * V;
		float mx = row[0];
		for (int j = 1; j < V; j++)
			mx = row[j] > mx ? row[j] : mx;
		float sum = 0;
#pragma omp simd reduction(+ : sum)
		for (int j = 0; j < V; j++)
			sum += llm_expf(row[j] - mx);
		float lse = mx + (float)log(sum);
		float w = mask ? mask[i] : 1.0f;
		a->lse[i] = lse;
		a->wt[i] = wsum > 0 ? (float)(w / wsum) : 0.0f;
		if (w != 0.0f)
			total += (double)w * (lse - row[targets[i]]);
	}
	return wsum > 0 ? (float)(total / wsum) : 0.0f;
}

enum llm_err llm_model_forward(struct llm_model *m, const uint32_t *tokens, const uint32_t *targets,
			       const float *loss_mask, int B, int T, float *loss,
			       struct llm_diag *diag)
{
	return llm_model_forward_packed(m, tokens, targets, loss_mask, NULL, B, T, loss, diag);
}

/* Each row's positions must start at 0 and either go up by one or restart at 0. */
static enum llm_err check_positions(const uint32_t *pos, int B, int T, struct llm_diag *diag)
{
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			uint32_t p = pos[(size_t)b * T + t];
			if (p != 0 && (t == 0 || p != pos[(size_t)b * T + t - 1] + 1))
				return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
						    "row %d, token %d: position %u does not follow "
						    "the one before it",
						    b, t, p);
		}
	return LLM_OK;
}

enum llm_err llm_model_forward_packed(struct llm_model *m, const uint32_t *tokens,
				      const uint32_t *targets, const float *loss_mask,
				      const uint32_t *positions, int B, int T, float *loss,
				      struct llm_diag *diag)
{
	const struct llm_model_config *c = &m->config;
	if (B <= 0 || T <= 0)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "empty batch (%d × %d)", B, T);
	if (T > c->max_position_embeddings)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "sequence length %d exceeds max_position_embeddings %d", T,
				    c->max_position_embeddings);
	size_t n = (size_t)B * T;
	if ((double)n * c->vocab_size > (double)SIZE_MAX / 8 || n > (size_t)1 << 30)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "batch too large");
	enum llm_err e;
	if ((e = check_ids(tokens, n, c->vocab_size, "token", diag)) ||
	    (targets && (e = check_ids(targets, n, c->vocab_size, "target", diag))) ||
	    (positions && (e = check_positions(positions, B, T, diag))))
		return e;
	struct llm_acts *a = m->acts;
	a->ready_for_backward = false;
	if ((e = ensure_acts(m, B, T, diag)))
		return e;
	m->B = B, m->T = T;
	memcpy(a->tok, tokens, n * sizeof *tokens);
	a->pos = NULL;
	if (positions) {
		memcpy(a->tok + 2 * n, positions, n * sizeof *positions);
		a->pos = a->tok + 2 * n;
	}
	int N = (int)n, D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
	int H = c->num_attention_heads, KV = c->num_key_value_heads;
	int hd = llm_model_config_head_dim(c), KVD = KV * hd;
	float eps = (float)c->rms_norm_eps;

#pragma omp parallel for schedule(static)
	for (int i = 0; i < N; i++)
		memcpy(a->res + (size_t)i * D, m->w.embed + (size_t)tokens[i] * D,
		       (size_t)D * sizeof(float));

	for (int l = 0; l < c->num_hidden_layers; l++) {
		const struct llm_layer_weights *w = &m->w.layer[l];
		struct layer_acts *la = &a->layer[l];
		const float *res_in = a->res + (size_t)l * N * D;
		float *res_out = a->res + (size_t)(l + 1) * N * D;

		rmsnorm_forward(la->xn1, la->rstd1, res_in, w->attn_norm, N, D, eps);
		linear_forward(la->q, la->xn1, w->wq, N, D, D);
		linear_forward(la->k, la->xn1, w->wk, N, D, KVD);
		linear_forward(la->v, la->xn1, w->wv, N, D, KVD);
		lora_add(m, l, LLM_LORA_Q, la->q, la->xn1, N);
		lora_add(m, l, LLM_LORA_K, la->k, la->xn1, N);
		lora_add(m, l, LLM_LORA_V, la->v, la->xn1, N);
		rope_apply(la->q, N, T, H, hd, m->rope_cos, m->rope_sin, a->pos, false);
		rope_apply(la->k, N, T, KV, hd, m->rope_cos, m->rope_sin, a->pos, false);
		attention_forward(la->att, la->lse, la->q, la->k, la->v, a->pos, B, T, H, KV, hd,
				  a->scratch, a->nthreads);
		memcpy(la->res_mid, res_in, n * D * sizeof(float));
		llm_matmul(false, true, N, D, D, 1.0f, la->att, D, w->wo, D, 1.0f, la->res_mid, D);
		lora_add(m, l, LLM_LORA_O, la->res_mid, la->att, N);

		rmsnorm_forward(la->xn2, la->rstd2, la->res_mid, w->ffn_norm, N, D, eps);
		linear_forward(la->gate, la->xn2, w->w_gate, N, D, F);
		linear_forward(la->up, la->xn2, w->w_up, N, D, F);
		lora_add(m, l, LLM_LORA_GATE, la->gate, la->xn2, N);
		lora_add(m, l, LLM_LORA_UP, la->up, la->xn2, N);
		swiglu_forward(la->h, la->gate, la->up, n * F);
		memcpy(res_out, la->res_mid, n * D * sizeof(float));
		llm_matmul(false, true, N, D, F, 1.0f, la->h, F, w->w_down, F, 1.0f, res_out, D);
		lora_add(m, l, LLM_LORA_DOWN, res_out, la->h, N);
	}

	rmsnorm_forward(a->xnf, a->rstdf, a->res + (size_t)c->num_hidden_layers * N * D, m->w.norm,
			N, D, eps);
	linear_forward(a->logits, a->xnf, m->w.lm_head, N, D, V);

	if (!targets)
		return LLM_OK;
	memcpy(a->tok + n, targets, n * sizeof *targets);
	m->loss = cross_entropy(a, targets, loss_mask, n, V);
	if (loss)
		*loss = m->loss;
	a->ready_for_backward = true;
	return LLM_OK;
}

enum llm_err llm_model_backward(struct llm_model *m, struct llm_diag *diag)
{
	struct llm_acts *a = m->acts;
	if (!a->ready_for_backward)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "backward needs a forward pass with targets just before it");
	if (a->lora != m->lora ||
	    a->lora_floats != (m->lora ? (m->lora->n_adapters + 1) * (size_t)m->lora->config.r : 0))
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "LoRA adapters changed after the forward pass");
	/* With adapters the base is frozen: no base gradient is allocated or computed (the
	 * views in none are NULL), and nothing below layer 0's attention needs an activation
	 * gradient. */
	bool frozen = m->lora != NULL;
	struct llm_weights none = {0};
	enum llm_err e = frozen ? LLM_OK : ensure_grads(m, diag);
	if (e)
		return e;
	const struct llm_weights *gm = frozen ? &none : &m->g;
	a->ready_for_backward = false;
	const struct llm_model_config *c = &m->config;
	int B = a->B, T = a->T, N = B * T, D = c->hidden_size, F = c->intermediate_size;
	int V = c->vocab_size, H = c->num_attention_heads, KV = c->num_key_value_heads;
	int hd = llm_model_config_head_dim(c), KVD = KV * hd;
	size_t n = (size_t)N;
	const uint32_t *tokens = a->tok, *targets = a->tok + n;

	/* dlogits = (softmax − onehot(target)) · share, in place of the logits. */
#pragma omp parallel for schedule(static)
	for (int i = 0; i < N; i++) {
		float *row = a->logits + (size_t)i * V;
		float wt = a->wt[i], lse = a->lse[i];
		if (wt == 0.0f) {
			memset(row, 0, (size_t)V * sizeof *row);
			continue;
		}
#pragma omp simd
		for (int j = 0; j < V; j++)
			row[j] = llm_expf(row[j] - lse) * wt;
		row[targets[i]] -= wt;
	}
	linear_backward(a->dx, gm->lm_head, a->logits, a->xnf, m->w.lm_head, N, D, V, false);
	memset(a->dres, 0, n * D * sizeof(float));
	rmsnorm_backward(a->dres, gm->norm, a->dx, a->res + (size_t)c->num_hidden_layers * N * D,
			 a->rstdf, m->w.norm, N, D);

	for (int l = c->num_hidden_layers - 1; l >= 0; l--) {
		const struct llm_layer_weights *w = &m->w.layer[l];
		static const struct llm_layer_weights no_grads;
		const struct llm_layer_weights *gw = frozen ? &no_grads : &m->g.layer[l];
		struct layer_acts *la = &a->layer[l];
		const float *res_in = a->res + (size_t)l * N * D;
		/* The gradient at the attention's input: only the embedding (frozen) needs
		 * layer 0's. */
		float *dx_in = frozen && l == 0 ? NULL : a->dx;

		/* a->dres is the gradient at the layer's output; the residual passes it on.  Each
		 * adapter's backward follows its Linear's and adds to the same input gradient. */
		linear_backward(a->dh, gw->w_down, a->dres, la->h, w->w_down, N, F, D, false);
		lora_grad(m, l, LLM_LORA_DOWN, a->dh, a->dres, la->h, N);
		swiglu_backward(a->dgate, a->dup, a->dh, la->gate, la->up, n * F);
		linear_backward(a->dx, gw->w_gate, a->dgate, la->xn2, w->w_gate, N, D, F, false);
		linear_backward(a->dx, gw->w_up, a->dup, la->xn2, w->w_up, N, D, F, true);
		lora_grad(m, l, LLM_LORA_GATE, a->dx, a->dgate, la->xn2, N);
		lora_grad(m, l, LLM_LORA_UP, a->dx, a->dup, la->xn2, N);
		rmsnorm_backward(a->dres, gw->ffn_norm, a->dx, la->res_mid, la->rstd2, w->ffn_norm,
				 N, D);

		linear_backward(a->datt, gw->wo, a->dres, la->att, w->wo, N, D, D, false);
		lora_grad(m, l, LLM_LORA_O, a->datt, a->dres, la->att, N);
		attention_backward(a->dq, a->dk, a->dv, a->datt, la->q, la->k, la->v, la->lse,
				   a->pos, B, T, H, KV, hd, a->scratch, a->nthreads);
		rope_apply(a->dq, N, T, H, hd, m->rope_cos, m->rope_sin, a->pos, true);
		rope_apply(a->dk, N, T, KV, hd, m->rope_cos, m->rope_sin, a->pos, true);
		linear_backward(dx_in, gw->wq, a->dq, la->xn1, w->wq, N, D, D, false);
		linear_backward(dx_in, gw->wk, a->dk, la->xn1, w->wk, N, D, KVD, true);
		linear_backward(dx_in, gw->wv, a->dv, la->xn1, w->wv, N, D, KVD, true);
		lora_grad(m, l, LLM_LORA_Q, dx_in, a->dq, la->xn1, N);
		lora_grad(m, l, LLM_LORA_K, dx_in, a->dk, la->xn1, N);
		lora_grad(m, l, LLM_LORA_V, dx_in, a->dv, la->xn1, N);
		if (dx_in)
			rmsnorm_backward(a->dres, gw->attn_norm, a->dx, res_in, la->rstd1,
					 w->attn_norm, N, D);
	}

	/* The embedding gradient, unless frozen.  Tokens repeat, so rows of it are shared:
	 * columns per thread. */
	if (frozen)
		return LLM_OK;
#pragma omp parallel
	{
		int j0, j1;
		llm_thread_share(D, &j0, &j1);
		for (int i = 0; i < N; i++) {
			float *dst = m->g.embed + (size_t)tokens[i] * D;
			const float *src = a->dres + (size_t)i * D;
			for (int j = j0; j < j1; j++)
				dst[j] += src[j];
		}
	}
	return LLM_OK;
}
