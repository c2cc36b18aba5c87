/* A Jinja interpreter for chat templates: lexer, recursive-descent parser, tree walker. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

#include "text/jinja.h"
#include "text/unicode.h"

/* ---- arenas: a template's tree and a render's values live and die together ------------- */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t data[];
};

struct arena {
	struct chunk *head;
	size_t total, max; /* bytes taken, and the most a render may take */
};

static void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (a->max && a->total + n > a->max)
		return NULL;
	if (!a->head || a->head->cap - a->head->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		struct chunk *c = malloc(sizeof *c + cap);
		if (!c)
			return NULL;
		c->next = a->head;
		c->used = 0;
		c->cap = cap;
		a->head = c;
	}
	void *p = (char *)a->head->data + a->head->used;
	a->head->used += n;
	a->total += n;
	memset(p, 0, n);
	return p;
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct chunk *next = a->head->next;
		free(a->head);
		a->head = next;
	}
	a->total = 0;
}

/* ---- values -------------------------------------------------------------------------- */

enum vtype { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_FUNC, V_MACRO };

struct vlist;
struct vdict;
struct node;

struct val {
	enum vtype t;
	union {
		bool b;
		int64_t i;
		double f;
		struct {
			const char *p;
			size_t n;
		} s;
		struct vlist *l;
		struct vdict *d;
		int fn;
		const struct node *macro;
	} u;
	const char *why; /* for an undefined value: what was looked up, for the error */
};

struct vlist {
	size_t n;
	struct val *v;
};

struct vdict {
	size_t n, cap;
	struct val *k, *v;
	bool ns; /* a namespace(): attributes may be assigned */
};

enum { F_RAISE, F_NAMESPACE, F_RANGE, F_DICT, F_STRFTIME };

static const struct val undef = {V_UNDEF, {0}, NULL};

static struct val mkbool(bool b)
{
	struct val v = {V_BOOL, {.b = b}, NULL};
	return v;
}
static struct val mkint(int64_t i)
{
	struct val v = {V_INT, {.i = i}, NULL};
	return v;
}
static struct val mkfloat(double f)
{
	struct val v = {V_FLOAT, {.f = f}, NULL};
	return v;
}
static struct val mkstr(const char *p, size_t n)
{
	struct val v = {V_STR, {.s = {p, n}}, NULL};
	return v;
}

/* ---- the tree ------------------------------------------------------------------------ */

enum nkind {
	/* statements */
	N_TEXT,
	N_OUT,
	N_IF,
	N_FOR,
	N_SET,
	N_SETBLOCK,
	N_MACRO,
	N_BREAK,
	N_CONTINUE,
	N_GEN,
	/* expressions */
	E_LIT,
	E_NAME,
	E_ATTR,
	E_ITEM,
	E_SLICE,
	E_CALL,
	E_FILTER,
	E_TEST,
	E_NEG,
	E_POS,
	E_NOT,
	E_BIN,
	E_AND,
	E_OR,
	E_COND,
	E_LIST,
	E_DICT,
	E_TUPLE,
};

struct nlist {
	struct node **v;
	size_t n, cap;
};

struct node {
	enum nkind k;
	int line;
	int op; /* for E_BIN: the operator token; for E_TEST: 1 when negated */
	struct val lit;
	const char *name; /* names of variables, attributes, filters, tests, macros */
	struct node *a, *b, *c;
	struct nlist args;	/* call and filter arguments, list items, targets, dict pairs */
	const char **kwnames;	/* per entry of args: the keyword or NULL */
	struct nlist body, alt; /* statement bodies: then/else, loop/else */
};

struct llm_jinja {
	struct arena arena;
	struct nlist body;
	char *name;
	bool generation;
};

/* ---- lexer --------------------------------------------------------------------------- */

enum ttype {
	T_DATA,
	T_VAR_BEGIN,
	T_VAR_END,
	T_BLOCK_BEGIN,
	T_BLOCK_END,
	T_NAME,
	T_STRING,
	T_INT,
	T_FLOAT,
	T_OP,
	T_EOF
};

/* Two-character operators first, so "//" is not read as "/" "/". */
enum {
	OP_EQ = 256,
	OP_NE,
	OP_LE,
	OP_GE,
	OP_FLOORDIV,
	OP_POW,
};

struct token {
	enum ttype t;
	int line;
	int op;	       /* T_OP: the character or OP_* */
	const char *p; /* T_DATA, T_NAME: the text; T_STRING: the decoded text */
	size_t n;
	int64_t i;
	double f;
	bool strip_before; /* unused after lexing; kept for clarity of the begin tokens */
};

struct parser {
	struct llm_jinja *t;
	struct token *toks;
	size_t ntoks, cap, pos;
	struct llm_diag *diag;
	bool failed;
	enum llm_err code;
};

static bool perr(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool perr(struct parser *p, int line, const char *fmt, ...)
{
	if (p->failed)
		return false;
	p->failed = true;
	p->code = strstr(fmt, "out of memory") ? LLM_ERR_NOMEM : LLM_ERR_USAGE;
	char msg[LLM_DIAG_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	llm_diag_set(p->diag, p->code, p->t->name, line, "%s", msg);
	return false;
}

static bool push_tok(struct parser *p, struct token tk)
{
	if (p->ntoks == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		struct token *v = realloc(p->toks, cap * sizeof *v);
		if (!v)
			return perr(p, tk.line, "out of memory");
		p->toks = v;
		p->cap = cap;
	}
	p->toks[p->ntoks++] = tk;
	return true;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int count_lines(const char *s, size_t n)
{
	int k = 0;
	for (size_t i = 0; i < n; i++)
		k += s[i] == '\n';
	return k;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A string literal starting at s[*i] (the quote), decoded as Python decodes it. */
static bool lex_string(struct parser *p, const char *s, size_t n, size_t *i, int line)
{
	char q = s[*i];
	size_t j = *i + 1;
	char *out = arena_alloc(&p->t->arena, n - *i + 1);
	if (!out)
		return perr(p, line, "out of memory");
	size_t o = 0;
	while (j < n && s[j] != q) {
		if (s[j] != '\\' || j + 1 >= n) {
			out[o++] = s[j++];
			continue;
		}
		char e = s[j + 1];
		j += 2;
		switch (e) {
		case 'n':
			out[o++] = '\n';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case '0':
			out[o++] = '\0';
			break;
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'v':
			out[o++] = '\v';
			break;
		case 'a':
			out[o++] = '\a';
			break;
		case '\\':
			out[o++] = '\\';
			break;
		case '\'':
			out[o++] = '\'';
			break;
		case '"':
			out[o++] = '"';
			break;
		case '\n':
			break;
		case 'x':
		case 'u':
		case 'U': {
			int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
			uint32_t c = 0;
			for (int k = 0; k < digits; k++) {
				int h = j < n ? hexval(s[j]) : -1;
				if (h < 0)
					return perr(p, line, "bad \\%c escape in a string", e);
				c = c << 4 | (uint32_t)h;
				j++;
			}
			if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
				return perr(p, line, "bad code point in a string escape");
			o += llm_unicode_encode(c, out + o);
			break;
		}
		default:
			/* Python keeps an unknown escape as written. */
			out[o++] = '\\';
			out[o++] = e;
		}
	}
	if (j >= n)
		return perr(p, line, "unterminated string");
	out[o] = '\0';
	*i = j + 1;
	return push_tok(p, (struct token){T_STRING, line, 0, out, o, 0, 0, false});
}

/* Tokens inside a tag, up to its end ("}}" or "%}", with an optional "-" before it).  Returns
 * the position after the end marker and whether it asked to strip what follows. */
static bool lex_tag(struct parser *p, const char *s, size_t n, size_t *i, int *line, char kind,
		    bool *strip_after)
{
	int depth = 0;
	char close = kind == '{' ? '}' : '%';
	while (*i < n) {
		char c = s[*i];
		if (c == '\n') {
			(*line)++;
			(*i)++;
			continue;
		}
		if (is_space(c)) {
			(*i)++;
			continue;
		}
		if (depth == 0 && c == '-' && *i + 2 < n && s[*i + 1] == close &&
		    s[*i + 2] == '}') {
			*i += 3;
			*strip_after = true;
			return push_tok(p, (struct token){kind == '{' ? T_VAR_END : T_BLOCK_END,
							  *line, 0, NULL, 0, 0, 0, false});
		}
		if (depth == 0 && c == '+' && kind == '%' && *i + 2 < n && s[*i + 1] == '%' &&
		    s[*i + 2] == '}') {
			*i += 3;
			*strip_after = false;
			return push_tok(
			    p, (struct token){T_BLOCK_END, *line, 1, NULL, 0, 0, 0, false});
		}
		if (depth == 0 && c == close && *i + 1 < n && s[*i + 1] == '}') {
			*i += 2;
			*strip_after = false;
			return push_tok(p, (struct token){kind == '{' ? T_VAR_END : T_BLOCK_END,
							  *line, 0, NULL, 0, 0, 0, false});
		}
		if (c == '\'' || c == '"') {
			if (!lex_string(p, s, n, i, *line))
				return false;
			continue;
		}
		if ((c >= '0' && c <= '9')) {
			size_t j = *i;
			bool isf = false;
			while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
				j++;
			if (j + 1 < n && s[j] == '.' && s[j + 1] >= '0' && s[j + 1] <= '9') {
				isf = true;
				j++;
				while (j < n && s[j] >= '0' && s[j] <= '9')
					j++;
			}
			if (j < n && (s[j] == 'e' || s[j] == 'E')) {
				size_t k = j + 1;
				if (k < n && (s[k] == '+' || s[k] == '-'))
					k++;
				if (k < n && s[k] >= '0' && s[k] <= '9') {
					isf = true;
					j = k;
					while (j < n && s[j] >= '0' && s[j] <= '9')
						j++;
				}
			}
			char num[64];
			size_t o = 0;
			for (size_t k = *i; k < j && o < sizeof num - 1; k++)
				if (s[k] != '_')
					num[o++] = s[k];
			num[o] = '\0';
			struct token tk = {isf ? T_FLOAT : T_INT, *line, 0, NULL, 0, 0, 0, false};
			errno = 0;
			if (isf)
				tk.f = strtod(num, NULL);
			else
				tk.i = strtoll(num, NULL, 10);
			if (errno)
				return perr(p, *line, "number out of range: %s", num);
			*i = j;
			if (!push_tok(p, tk))
				return false;
			continue;
		}
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
			size_t j = *i;
			while (j < n &&
			       ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
				(s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
				j++;
			if (!push_tok(
				p, (struct token){T_NAME, *line, 0, s + *i, j - *i, 0, 0, false}))
				return false;
			*i = j;
			continue;
		}
		static const struct {
			const char *text;
			int op;
		} two[] = {{"==", OP_EQ}, {"!=", OP_NE},       {"<=", OP_LE},
			   {">=", OP_GE}, {"//", OP_FLOORDIV}, {"**", OP_POW}};
		int op = 0;
		for (size_t k = 0; k < sizeof two / sizeof *two; k++)
			if (*i + 1 < n && c == two[k].text[0] && s[*i + 1] == two[k].text[1])
				op = two[k].op;
		if (op) {
			*i += 2;
		} else if (strchr("+-*/%~<>=()[]{}.,:|", c)) {
			op = c;
			(*i)++;
			if (c == '(' || c == '[' || c == '{')
				depth++;
			else if ((c == ')' || c == ']' || c == '}') && depth > 0)
				depth--;
		} else {
			return perr(p, *line, "unexpected character '%c'", c);
		}
		if (!push_tok(p, (struct token){T_OP, *line, op, NULL, 0, 0, 0, false}))
			return false;
	}
	return perr(p, *line, "unclosed tag: missing '%c}'", close);
}

/* Split the source into tokens, applying jinja2's whitespace control with trim_blocks and
 * lstrip_blocks on, as transformers configures it. */
static bool lex(struct parser *p, const char *s, size_t n)
{
	size_t i = 0;
	int line = 1;
	bool line_starting = true, strip_next = false;
	while (i <= n) {
		size_t ts = i;
		while (ts + 1 < n && !(s[ts] == '{' &&
				       (s[ts + 1] == '{' || s[ts + 1] == '%' || s[ts + 1] == '#')))
			ts++;
		bool tag = ts + 1 < n;
		if (!tag)
			ts = n;
		const char *text = s + i;
		size_t tlen = ts - i;
		int text_line = line;
		line += count_lines(text, tlen);
		if (strip_next) {
			while (tlen && is_space(*text)) {
				text_line += *text == '\n';
				text++;
				tlen--;
			}
		}
		char kind = tag ? s[ts + 1] : 0;
		char sign = tag && ts + 2 < n ? s[ts + 2] : 0;
		if (tag && sign == '-') {
			while (tlen && is_space(text[tlen - 1]))
				tlen--;
		} else if (tag && sign != '+' && (kind == '%' || kind == '#')) {
			size_t l = tlen;
			while (l && text[l - 1] != '\n')
				l--;
			bool blank = true;
			for (size_t k = l; k < tlen; k++)
				if (text[k] != ' ' && text[k] != '\t')
					blank = false;
			if ((l > 0 || line_starting) && blank)
				tlen = l;
		}
		if (tlen &&
		    !push_tok(p, (struct token){T_DATA, text_line, 0, text, tlen, 0, 0, false}))
			return false;
		if (!tag)
			break;
		i = ts + 2 + (sign == '-' || sign == '+');
		bool strip_after = false, keep_newline = false;
		if (kind == '#') {
			const char *end = NULL;
			for (size_t k = i; k + 1 < n; k++)
				if (s[k] == '#' && s[k + 1] == '}') {
					end = s + k;
					break;
				}
			if (!end)
				return perr(p, line, "unclosed comment");
			line += count_lines(s + i, (size_t)(end - s) - i);
			strip_after = end > s + i && end[-1] == '-';
			keep_newline = end > s + i && end[-1] == '+';
			i = (size_t)(end - s) + 2;
		} else {
			if (!push_tok(p, (struct token){kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN,
							line, 0, NULL, 0, 0, 0, false}))
				return false;
			if (!lex_tag(p, s, n, &i, &line, kind, &strip_after))
				return false;
			keep_newline = p->toks[p->ntoks - 1].op == 1;
		}
		line_starting = false;
		if (strip_after) {
			size_t k = i;
			while (k < n && is_space(s[k]))
				k++;
			line_starting = k > i && s[k - 1] == '\n';
			strip_next = false;
			line += count_lines(s + i, k - i);
			i = k;
		} else {
			strip_next = false;
			if (kind != '{' && !keep_newline && i < n && s[i] == '\n') {
				i++;
				line++;
				line_starting = true;
			}
		}
	}
	return push_tok(p, (struct token){T_EOF, line, 0, NULL, 0, 0, 0, false});
}

/* ---- parser -------------------------------------------------------------------------- */

static struct token *peek(struct parser *p)
{
	return &p->toks[p->pos];
}
static struct token *next(struct parser *p)
{
	struct token *t = &p->toks[p->pos];
	if (t->t != T_EOF)
		p->pos++;
	return t;
}
static bool is_op(const struct token *t, int op)
{
	return t->t == T_OP && t->op == op;
}
static bool is_name(const struct token *t, const char *name)
{
	return t->t == T_NAME && strlen(name) == t->n && !memcmp(t->p, name, t->n);
}
static bool accept_op(struct parser *p, int op)
{
	if (!is_op(peek(p), op))
		return false;
	p->pos++;
	return true;
}
static bool accept_name(struct parser *p, const char *name)
{
	if (!is_name(peek(p), name))
		return false;
	p->pos++;
	return true;
}

static const char *tok_desc(const struct token *t, char *buf, size_t n)
{
	switch (t->t) {
	case T_NAME:
		snprintf(buf, n, "'%.*s'", (int)t->n, t->p);
		break;
	case T_OP:
		if (t->op < 256)
			snprintf(buf, n, "'%c'", t->op);
		else
			snprintf(buf, n, "an operator");
		break;
	case T_STRING:
		snprintf(buf, n, "a string");
		break;
	case T_INT:
	case T_FLOAT:
		snprintf(buf, n, "a number");
		break;
	case T_VAR_END:
		snprintf(buf, n, "'}}'");
		break;
	case T_BLOCK_END:
		snprintf(buf, n, "'%%}'");
		break;
	case T_EOF:
		snprintf(buf, n, "the end of the template");
		break;
	default:
		snprintf(buf, n, "'%s'", t->t == T_DATA ? "text" : "{");
		break;
	}
	return buf;
}

static bool expect_op(struct parser *p, int op)
{
	if (accept_op(p, op))
		return true;
	char d[64];
	return perr(p, peek(p)->line, "expected '%c', found %s", op,
		    tok_desc(peek(p), d, sizeof d));
}

static struct node *mknode(struct parser *p, enum nkind k, int line)
{
	struct node *n = arena_alloc(&p->t->arena, sizeof *n);
	if (!n) {
		perr(p, line, "out of memory");
		return NULL;
	}
	n->k = k;
	n->line = line;
	return n;
}

static bool nl_push(struct parser *p, struct nlist *l, struct node *n)
{
	if (!n)
		return false;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		struct node **v = arena_alloc(&p->t->arena, cap * sizeof *v);
		if (!v)
			return perr(p, n->line, "out of memory");
		if (l->n)
			memcpy(v, l->v, l->n * sizeof *v);
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = n;
	return true;
}

static const char *dupname(struct parser *p, const struct token *t)
{
	char *s = arena_alloc(&p->t->arena, t->n + 1);
	if (!s) {
		perr(p, t->line, "out of memory");
		return NULL;
	}
	memcpy(s, t->p, t->n);
	s[t->n] = '\0';
	return s;
}

static struct node *parse_expr(struct parser *p);
static struct node *parse_unary(struct parser *p, bool with_filter);
static struct node *parse_primary(struct parser *p);

static bool parse_args(struct parser *p, struct node *n, int close)
{
	size_t cap = 0;
	while (!accept_op(p, close)) {
		if (n->args.n && !expect_op(p, ','))
			return false;
		if (accept_op(p, close))
			break;
		const char *kw = NULL;
		if (peek(p)->t == T_NAME && p->pos + 1 < p->ntoks &&
		    is_op(&p->toks[p->pos + 1], '=')) {
			kw = dupname(p, next(p));
			next(p);
		}
		if (!nl_push(p, &n->args, parse_expr(p)))
			return false;
		if (n->args.n > cap) {
			size_t ncap = n->args.cap;
			const char **v = arena_alloc(&p->t->arena, ncap * sizeof *v);
			if (!v)
				return perr(p, n->line, "out of memory");
			if (n->kwnames)
				memcpy(v, n->kwnames, (n->args.n - 1) * sizeof *v);
			n->kwnames = v;
			cap = ncap;
		}
		n->kwnames[n->args.n - 1] = kw;
	}
	return true;
}

static struct node *parse_postfix(struct parser *p, struct node *n)
{
	while (n && !p->failed) {
		struct token *t = peek(p);
		if (is_op(t, '.')) {
			next(p);
			struct token *nm = next(p);
			if (nm->t != T_NAME && nm->t != T_INT) {
				perr(p, nm->line, "expected an attribute name after '.'");
				return NULL;
			}
			struct node *a = mknode(p, E_ATTR, t->line);
			if (!a)
				return NULL;
			a->a = n;
			if (nm->t == T_INT) {
				a->k = E_ITEM;
				a->b = mknode(p, E_LIT, t->line);
				if (!a->b)
					return NULL;
				a->b->lit = mkint(nm->i);
			} else {
				a->name = dupname(p, nm);
			}
			n = a;
		} else if (is_op(t, '[')) {
			next(p);
			struct node *lo = NULL, *hi = NULL, *step = NULL;
			bool slice = false;
			if (!is_op(peek(p), ':'))
				lo = parse_expr(p);
			if (accept_op(p, ':')) {
				slice = true;
				if (!is_op(peek(p), ']') && !is_op(peek(p), ':'))
					hi = parse_expr(p);
				if (accept_op(p, ':') && !is_op(peek(p), ']'))
					step = parse_expr(p);
			}
			if (p->failed || !expect_op(p, ']'))
				return NULL;
			struct node *a = mknode(p, slice ? E_SLICE : E_ITEM, t->line);
			if (!a)
				return NULL;
			a->a = n;
			a->b = lo;
			a->c = slice ? hi : NULL;
			if (slice)
				a->lit.u.macro =
				    step; /* the step rides in an otherwise unused slot */
			n = a;
		} else if (is_op(t, '(')) {
			next(p);
			struct node *c = mknode(p, E_CALL, t->line);
			if (!c)
				return NULL;
			c->a = n;
			if (!parse_args(p, c, ')'))
				return NULL;
			n = c;
		} else {
			break;
		}
	}
	return n;
}

static struct node *parse_filter_expr(struct parser *p, struct node *n)
{
	while (n && !p->failed) {
		struct token *t = peek(p);
		if (is_op(t, '|')) {
			next(p);
			struct token *nm = next(p);
			if (nm->t != T_NAME) {
				perr(p, nm->line, "expected a filter name after '|'");
				return NULL;
			}
			struct node *f = mknode(p, E_FILTER, t->line);
			if (!f)
				return NULL;
			f->a = n;
			f->name = dupname(p, nm);
			if (accept_op(p, '(') && !parse_args(p, f, ')'))
				return NULL;
			n = f;
		} else if (is_name(t, "is")) {
			next(p);
			struct node *f = mknode(p, E_TEST, t->line);
			if (!f)
				return NULL;
			f->op = accept_name(p, "not");
			struct token *nm = next(p);
			if (nm->t != T_NAME) {
				perr(p, nm->line, "expected a test name after 'is'");
				return NULL;
			}
			f->a = n;
			f->name = dupname(p, nm);
			if (accept_op(p, '(')) {
				if (!parse_args(p, f, ')'))
					return NULL;
			} else {
				/* One bare argument, as in "x is divisibleby 3" or "x is sameas
				 * none". */
				struct token *a = peek(p);
				if (a->t == T_STRING || a->t == T_INT || a->t == T_FLOAT ||
				    (a->t == T_NAME && !is_name(a, "and") && !is_name(a, "or") &&
				     !is_name(a, "else") && !is_name(a, "if") &&
				     !is_name(a, "in") && !is_name(a, "not") && !is_name(a, "is")))
					if (!nl_push(p, &f->args, parse_primary(p)))
						return NULL;
			}
			n = f;
		} else {
			break;
		}
	}
	return n;
}

static struct node *parse_tuple_or_paren(struct parser *p, int line)
{
	if (accept_op(p, ')'))
		return mknode(p, E_TUPLE, line);
	struct node *e = parse_expr(p);
	if (!e)
		return NULL;
	if (accept_op(p, ')'))
		return e;
	struct node *t = mknode(p, E_TUPLE, line);
	if (!t || !nl_push(p, &t->args, e))
		return NULL;
	while (accept_op(p, ',')) {
		if (is_op(peek(p), ')'))
			break;
		if (!nl_push(p, &t->args, parse_expr(p)))
			return NULL;
	}
	if (!expect_op(p, ')'))
		return NULL;
	return t;
}

static struct node *parse_primary(struct parser *p)
{
	struct token *t = next(p);
	struct node *n = NULL;
	char d[64];
	switch (t->t) {
	case T_STRING:
		n = mknode(p, E_LIT, t->line);
		if (!n)
			return NULL;
		n->lit = mkstr(t->p, t->n);
		/* Adjacent literals concatenate, as in Python. */
		while (peek(p)->t == T_STRING) {
			struct token *u = next(p);
			char *s = arena_alloc(&p->t->arena, n->lit.u.s.n + u->n + 1);
			if (!s) {
				perr(p, t->line, "out of memory");
				return NULL;
			}
			memcpy(s, n->lit.u.s.p, n->lit.u.s.n);
			memcpy(s + n->lit.u.s.n, u->p, u->n);
			n->lit = mkstr(s, n->lit.u.s.n + u->n);
		}
		return n;
	case T_INT:
	case T_FLOAT:
		n = mknode(p, E_LIT, t->line);
		if (n)
			n->lit = t->t == T_INT ? mkint(t->i) : mkfloat(t->f);
		return n;
	case T_NAME:
		n = mknode(p, E_LIT, t->line);
		if (!n)
			return NULL;
		if (is_name(t, "true") || is_name(t, "True"))
			n->lit = mkbool(true);
		else if (is_name(t, "false") || is_name(t, "False"))
			n->lit = mkbool(false);
		else if (is_name(t, "none") || is_name(t, "None"))
			n->lit.t = V_NONE;
		else {
			n->k = E_NAME;
			n->name = dupname(p, t);
		}
		return n;
	case T_OP:
		if (t->op == '(')
			return parse_tuple_or_paren(p, t->line);
		if (t->op == '[') {
			n = mknode(p, E_LIST, t->line);
			while (n && !accept_op(p, ']')) {
				if (n->args.n && !expect_op(p, ','))
					return NULL;
				if (accept_op(p, ']'))
					break;
				if (!nl_push(p, &n->args, parse_expr(p)))
					return NULL;
			}
			return n;
		}
		if (t->op == '{') {
			n = mknode(p, E_DICT, t->line);
			while (n && !accept_op(p, '}')) {
				if (n->args.n && !expect_op(p, ','))
					return NULL;
				if (accept_op(p, '}'))
					break;
				if (!nl_push(p, &n->args, parse_expr(p)) || !expect_op(p, ':') ||
				    !nl_push(p, &n->args, parse_expr(p)))
					return NULL;
			}
			return n;
		}
		break;
	default:
		break;
	}
	perr(p, t->line, "unexpected %s", tok_desc(t, d, sizeof d));
	return NULL;
}

static struct node *parse_unary(struct parser *p, bool with_filter)
{
	struct token *t = peek(p);
	struct node *n;
	if (is_op(t, '-') || is_op(t, '+')) {
		next(p);
		n = mknode(p, is_op(t, '-') ? E_NEG : E_POS, t->line);
		if (n && !(n->a = parse_unary(p, false)))
			return NULL;
	} else {
		n = parse_postfix(p, parse_primary(p));
	}
	return with_filter ? parse_filter_expr(p, n) : n;
}

static struct node *binop(struct parser *p, int op, struct node *a, struct node *b, int line)
{
	if (!a || !b)
		return NULL;
	struct node *n = mknode(p, E_BIN, line);
	if (n) {
		n->op = op;
		n->a = a;
		n->b = b;
	}
	return n;
}

static struct node *parse_pow(struct parser *p)
{
	struct node *n = parse_unary(p, true);
	while (n && is_op(peek(p), OP_POW)) {
		int line = next(p)->line;
		n = binop(p, OP_POW, n, parse_unary(p, true), line);
	}
	return n;
}

static struct node *parse_math2(struct parser *p)
{
	struct node *n = parse_pow(p);
	for (;;) {
		struct token *t = peek(p);
		if (!n ||
		    !(is_op(t, '*') || is_op(t, '/') || is_op(t, '%') || is_op(t, OP_FLOORDIV)))
			return n;
		next(p);
		n = binop(p, t->op, n, parse_pow(p), t->line);
	}
}

static struct node *parse_concat(struct parser *p)
{
	struct node *n = parse_math2(p);
	while (n && is_op(peek(p), '~')) {
		int line = next(p)->line;
		n = binop(p, '~', n, parse_math2(p), line);
	}
	return n;
}

static struct node *parse_math1(struct parser *p)
{
	struct node *n = parse_concat(p);
	for (;;) {
		struct token *t = peek(p);
		if (!n || !(is_op(t, '+') || is_op(t, '-')))
			return n;
		next(p);
		n = binop(p, t->op, n, parse_concat(p), t->line);
	}
}

enum { OP_IN = 512, OP_NOTIN };

static struct node *parse_compare(struct parser *p)
{
	struct node *n = parse_math1(p);
	for (;;) {
		struct token *t = peek(p);
		int op = 0;
		if (is_op(t, OP_EQ) || is_op(t, OP_NE) || is_op(t, '<') || is_op(t, '>') ||
		    is_op(t, OP_LE) || is_op(t, OP_GE))
			op = t->op;
		else if (is_name(t, "in"))
			op = OP_IN;
		else if (is_name(t, "not") && p->pos + 1 < p->ntoks &&
			 is_name(&p->toks[p->pos + 1], "in")) {
			op = OP_NOTIN;
			next(p);
		}
		if (!n || !op)
			return n;
		next(p);
		/* Chained comparisons (a < b < c) are rare in templates; read them left to right.
		 */
		n = binop(p, op, n, parse_math1(p), t->line);
	}
}

static struct node *parse_not(struct parser *p)
{
	struct token *t = peek(p);
	if (is_name(t, "not")) {
		next(p);
		struct node *n = mknode(p, E_NOT, t->line);
		if (n && !(n->a = parse_not(p)))
			return NULL;
		return n;
	}
	return parse_compare(p);
}

/* A left-associative chain "x WORD x WORD x ..." of operands parsed by sub. */
static struct node *parse_chain(struct parser *p, const char *word, enum nkind kind,
				struct node *(*sub)(struct parser *))
{
	struct node *n = sub(p);
	while (n && is_name(peek(p), word)) {
		int line = next(p)->line;
		struct node *a = mknode(p, kind, line);
		if (!a)
			return NULL;
		a->a = n;
		if (!(a->b = sub(p)))
			return NULL;
		n = a;
	}
	return n;
}

static struct node *parse_and(struct parser *p)
{
	return parse_chain(p, "and", E_AND, parse_not);
}

static struct node *parse_or(struct parser *p)
{
	return parse_chain(p, "or", E_OR, parse_and);
}

static struct node *parse_expr(struct parser *p)
{
	struct node *n = parse_or(p);
	while (n && is_name(peek(p), "if")) {
		int line = next(p)->line;
		struct node *c = mknode(p, E_COND, line);
		if (!c)
			return NULL;
		c->a = n;
		if (!(c->b = parse_or(p)))
			return NULL;
		if (accept_name(p, "else") && !(c->c = parse_expr(p)))
			return NULL;
		n = c;
	}
	return n;
}

/* Assignment targets: "x", "a, b", "ns.attr". */
static struct node *parse_target(struct parser *p, bool allow_attr)
{
	struct token *t = next(p);
	if (t->t != T_NAME) {
		perr(p, t->line, "expected a variable name");
		return NULL;
	}
	struct node *n = mknode(p, E_NAME, t->line);
	if (!n)
		return NULL;
	n->name = dupname(p, t);
	if (allow_attr && accept_op(p, '.')) {
		struct token *a = next(p);
		if (a->t != T_NAME) {
			perr(p, a->line, "expected an attribute name after '.'");
			return NULL;
		}
		struct node *at = mknode(p, E_ATTR, t->line);
		if (!at)
			return NULL;
		at->a = n;
		at->name = dupname(p, a);
		return at;
	}
	if (!is_op(peek(p), ','))
		return n;
	struct node *tu = mknode(p, E_TUPLE, t->line);
	if (!tu || !nl_push(p, &tu->args, n))
		return NULL;
	while (accept_op(p, ',')) {
		struct token *u = next(p);
		if (u->t != T_NAME) {
			perr(p, u->line, "expected a variable name");
			return NULL;
		}
		struct node *m = mknode(p, E_NAME, u->line);
		if (!m)
			return NULL;
		m->name = dupname(p, u);
		if (!nl_push(p, &tu->args, m))
			return NULL;
	}
	return tu;
}

static bool expect_block_end(struct parser *p)
{
	struct token *t = next(p);
	if (t->t == T_BLOCK_END)
		return true;
	char d[64];
	return perr(p, t->line, "expected '%%}', found %s", tok_desc(t, d, sizeof d));
}

/* Parse statements until a block tag whose name is one of stops ("endif|elif|else"); *stop
 * gets the name found.  At top level stops is NULL and the body ends at T_EOF. */
static bool parse_body(struct parser *p, struct nlist *body, const char *const *stops,
		       const char **stop, int open_line, const char *open_name);

static bool parse_statement(struct parser *p, struct nlist *body, struct token *kw)
{
	int line = kw->line;
	if (is_name(kw, "if") || is_name(kw, "elif")) {
		struct node *n = mknode(p, N_IF, line);
		if (!n || !(n->a = parse_expr(p)) || !expect_block_end(p))
			return false;
		static const char *const stops[] = {"elif", "else", "endif", NULL};
		const char *stop;
		if (!parse_body(p, &n->body, stops, &stop, line, "if"))
			return false;
		if (!strcmp(stop, "elif")) {
			struct token *e = &p->toks[p->pos - 1];
			if (!parse_statement(p, &n->alt, e))
				return false;
		} else if (!strcmp(stop, "else")) {
			static const char *const stops2[] = {"endif", NULL};
			if (!expect_block_end(p) ||
			    !parse_body(p, &n->alt, stops2, &stop, line, "if") ||
			    !expect_block_end(p))
				return false;
		} else if (!expect_block_end(p)) {
			return false;
		}
		return nl_push(p, body, n);
	}
	if (is_name(kw, "for")) {
		struct node *n = mknode(p, N_FOR, line);
		if (!n || !(n->b = parse_target(p, false)))
			return false;
		if (!accept_name(p, "in"))
			return perr(p, line, "expected 'in' in a for loop");
		n->a = parse_or(p); /* not parse_expr: "if" here filters the loop */
		if (!n->a)
			return false;
		if (accept_name(p, "if") && !(n->c = parse_expr(p)))
			return false;
		if (accept_name(p, "recursive"))
			return perr(p, line, "recursive loops are not supported");
		if (!expect_block_end(p))
			return false;
		static const char *const stops[] = {"else", "endfor", NULL};
		const char *stop;
		if (!parse_body(p, &n->body, stops, &stop, line, "for"))
			return false;
		if (!strcmp(stop, "else")) {
			static const char *const stops2[] = {"endfor", NULL};
			if (!expect_block_end(p) ||
			    !parse_body(p, &n->alt, stops2, &stop, line, "for"))
				return false;
		}
		return expect_block_end(p) && nl_push(p, body, n);
	}
	if (is_name(kw, "set")) {
		struct node *target = parse_target(p, true);
		if (!target)
			return false;
		if (accept_op(p, '=')) {
			struct node *n = mknode(p, N_SET, line);
			if (!n)
				return false;
			n->b = target;
			struct node *e = parse_expr(p);
			if (e && is_op(peek(p), ',')) {
				struct node *tu = mknode(p, E_TUPLE, line);
				if (!tu || !nl_push(p, &tu->args, e))
					return false;
				while (accept_op(p, ','))
					if (!nl_push(p, &tu->args, parse_expr(p)))
						return false;
				e = tu;
			}
			if (!(n->a = e) || !expect_block_end(p))
				return false;
			return nl_push(p, body, n);
		}
		if (target->k != E_NAME)
			return perr(p, line, "a block set assigns one plain variable");
		struct node *n = mknode(p, N_SETBLOCK, line);
		if (!n || !expect_block_end(p))
			return false;
		n->b = target;
		static const char *const stops[] = {"endset", NULL};
		const char *stop;
		return parse_body(p, &n->body, stops, &stop, line, "set") && expect_block_end(p) &&
		       nl_push(p, body, n);
	}
	if (is_name(kw, "macro")) {
		struct token *nm = next(p);
		if (nm->t != T_NAME)
			return perr(p, line, "expected a macro name");
		struct node *n = mknode(p, N_MACRO, line);
		if (!n || !expect_op(p, '('))
			return false;
		n->name = dupname(p, nm);
		/* Parameters: names, with defaults as keyword entries. */
		while (!accept_op(p, ')')) {
			if (n->args.n && !expect_op(p, ','))
				return false;
			struct token *pn = next(p);
			if (pn->t != T_NAME)
				return perr(p, pn->line, "expected a parameter name");
			struct node *param = mknode(p, E_NAME, pn->line);
			if (!param)
				return false;
			param->name = dupname(p, pn);
			if (accept_op(p, '=') && !(param->a = parse_expr(p)))
				return false;
			if (!nl_push(p, &n->args, param))
				return false;
		}
		if (!expect_block_end(p))
			return false;
		static const char *const stops[] = {"endmacro", NULL};
		const char *stop;
		return parse_body(p, &n->body, stops, &stop, line, "macro") &&
		       expect_block_end(p) && nl_push(p, body, n);
	}
	if (is_name(kw, "break") || is_name(kw, "continue")) {
		struct node *n = mknode(p, is_name(kw, "break") ? N_BREAK : N_CONTINUE, line);
		return n && expect_block_end(p) && nl_push(p, body, n);
	}
	if (is_name(kw, "generation")) {
		struct node *n = mknode(p, N_GEN, line);
		if (!n || !expect_block_end(p))
			return false;
		p->t->generation = true;
		static const char *const stops[] = {"endgeneration", NULL};
		const char *stop;
		return parse_body(p, &n->body, stops, &stop, line, "generation") &&
		       expect_block_end(p) && nl_push(p, body, n);
	}
	return perr(p, line, "unknown tag '%.*s'", (int)kw->n, kw->p);
}

static bool parse_body(struct parser *p, struct nlist *body, const char *const *stops,
		       const char **stop, int open_line, const char *open_name)
{
	for (;;) {
		struct token *t = next(p);
		if (t->t == T_EOF) {
			if (!stops)
				return true;
			return perr(p, open_line, "'%s' is never closed (expected '%s')", open_name,
				    stops[0][0] == 'e' && stops[1] ? stops[1] : stops[0]);
		}
		if (t->t == T_DATA) {
			struct node *n = mknode(p, N_TEXT, t->line);
			if (!n)
				return false;
			n->lit = mkstr(t->p, t->n);
			if (!nl_push(p, body, n))
				return false;
		} else if (t->t == T_VAR_BEGIN) {
			struct node *n = mknode(p, N_OUT, t->line);
			if (!n || !(n->a = parse_expr(p)))
				return false;
			struct token *e = next(p);
			if (e->t != T_VAR_END) {
				char d[64];
				return perr(p, e->line, "expected '}}', found %s",
					    tok_desc(e, d, sizeof d));
			}
			if (!nl_push(p, body, n))
				return false;
		} else if (t->t == T_BLOCK_BEGIN) {
			struct token *kw = next(p);
			if (kw->t != T_NAME)
				return perr(p, kw->line, "expected a tag name after '{%%'");
			for (const char *const *s = stops; s && *s; s++)
				if (is_name(kw, *s)) {
					*stop = *s;
					return true;
				}
			if (kw->n > 3 && !memcmp(kw->p, "end", 3))
				return perr(p, kw->line, "unexpected '%.*s'%s%s%s", (int)kw->n,
					    kw->p, stops ? " (expected '" : "",
					    stops ? stops[0] : "", stops ? "')" : "");
			if ((is_name(kw, "else") || is_name(kw, "elif")))
				return perr(p, kw->line, "unexpected '%.*s' outside an if or for",
					    (int)kw->n, kw->p);
			if (!parse_statement(p, body, kw))
				return false;
		} else {
			char d[64];
			return perr(p, t->line, "unexpected %s", tok_desc(t, d, sizeof d));
		}
	}
}

enum llm_err llm_jinja_parse(const char *src, size_t n, const char *name, struct llm_jinja **out,
			     struct llm_diag *diag)
{
	*out = NULL;
	struct llm_jinja *t = calloc(1, sizeof *t);
	if (!t || !(t->name = strdup(name ? name : "<template>"))) {
		free(t);
		return llm_diag_set(diag, LLM_ERR_NOMEM, name, 0, "out of memory");
	}
	/* jinja2 reads "\r\n" and "\r" as "\n" and drops one newline at the end of the source. */
	char *s = arena_alloc(&t->arena, n + 1);
	if (!s) {
		llm_jinja_free(t);
		return llm_diag_set(diag, LLM_ERR_NOMEM, name, 0, "out of memory");
	}
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (src[i] == '\r') {
			s[m++] = '\n';
			if (i + 1 < n && src[i + 1] == '\n')
				i++;
		} else {
			s[m++] = src[i];
		}
	}
	if (m && s[m - 1] == '\n')
		m--;
	struct parser p = {t, NULL, 0, 0, 0, diag, false, LLM_OK};
	bool ok = lex(&p, s, m) && parse_body(&p, &t->body, NULL, NULL, 0, NULL);
	free(p.toks);
	if (!ok) {
		llm_jinja_free(t);
		return p.code;
	}
	*out = t;
	return LLM_OK;
}

void llm_jinja_free(struct llm_jinja *t)
{
	if (!t)
		return;
	arena_free(&t->arena);
	free(t->name);
	free(t);
}

bool llm_jinja_has_generation(const struct llm_jinja *t)
{
	return t->generation;
}

/* ---- rendering ----------------------------------------------------------------------- */

struct frame {
	struct vdict *vars;
};

struct render {
	const struct llm_jinja *t;
	struct arena arena;
	struct llm_buf *out;
	size_t base; /* out->len at the start */
	struct frame *frames;
	size_t nframes, capframes;
	size_t floor; /* lookups skip frames below this one, but for frame 0 (macros) */
	struct vdict *globals;
	struct llm_jinja_span *spans;
	size_t nspans, capspans;
	int gen_depth;
	int capture_depth;
	int ctl; /* 1 break, 2 continue pending */
	struct llm_diag *diag;
	bool failed;
	enum llm_err code;
};

static bool rerr(struct render *r, enum llm_err code, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool rerr(struct render *r, enum llm_err code, int line, const char *fmt, ...)
{
	if (r->failed)
		return false;
	r->failed = true;
	r->code = code;
	char msg[LLM_DIAG_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	llm_diag_set(r->diag, code, r->t->name, line, "%s", msg);
	return false;
}

static void *ralloc(struct render *r, size_t n, int line)
{
	void *p = arena_alloc(&r->arena, n);
	if (!p)
		rerr(r, LLM_ERR_TOO_BIG, line, "the template needs more than %zu bytes of memory",
		     r->arena.max);
	return p;
}

static const char *type_name(const struct val *v)
{
	switch (v->t) {
	case V_UNDEF:
		return "undefined";
	case V_NONE:
		return "none";
	case V_BOOL:
		return "boolean";
	case V_INT:
		return "integer";
	case V_FLOAT:
		return "float";
	case V_STR:
		return "string";
	case V_LIST:
		return "list";
	case V_DICT:
		return v->u.d->ns ? "namespace" : "dict";
	default:
		return "function";
	}
}

static bool str_eq(const struct val *v, const char *s)
{
	return v->t == V_STR && v->u.s.n == strlen(s) && !memcmp(v->u.s.p, s, v->u.s.n);
}

static struct vdict *dict_new(struct render *r, size_t cap, int line)
{
	struct vdict *d = ralloc(r, sizeof *d, line);
	if (d && cap) {
		d->k = ralloc(r, cap * sizeof *d->k, line);
		d->v = ralloc(r, cap * sizeof *d->v, line);
		if (!d->k || !d->v)
			return NULL;
		d->cap = cap;
	}
	return d;
}

static bool val_eq(const struct val *a, const struct val *b);

static struct val *dict_find(const struct vdict *d, const struct val *key)
{
	for (size_t i = 0; i < d->n; i++)
		if (val_eq(&d->k[i], key))
			return &d->v[i];
	return NULL;
}

static struct val *dict_find_str(const struct vdict *d, const char *key, size_t n)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->k[i].t == V_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, key, n))
			return &d->v[i];
	return NULL;
}

static bool dict_set(struct render *r, struct vdict *d, struct val key, struct val v, int line)
{
	struct val *slot = dict_find(d, &key);
	if (slot) {
		*slot = v;
		return true;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct val *k = ralloc(r, cap * sizeof *k, line),
			   *vv = ralloc(r, cap * sizeof *vv, line);
		if (!k || !vv)
			return false;
		if (d->n) {
			memcpy(k, d->k, d->n * sizeof *k);
			memcpy(vv, d->v, d->n * sizeof *vv);
		}
		d->k = k;
		d->v = vv;
		d->cap = cap;
	}
	d->k[d->n] = key;
	d->v[d->n++] = v;
	return true;
}

static bool dict_set_str(struct render *r, struct vdict *d, const char *key, struct val v, int line)
{
	return dict_set(r, d, mkstr(key, strlen(key)), v, line);
}

static struct vlist *list_new(struct render *r, size_t n, int line)
{
	struct vlist *l = ralloc(r, sizeof *l, line);
	if (!l)
		return NULL;
	l->n = n;
	if (n && !(l->v = ralloc(r, n * sizeof *l->v, line)))
		return NULL;
	return l;
}

static struct val mklist(struct vlist *l)
{
	struct val v = {V_LIST, {.l = l}, NULL};
	return v;
}
static struct val mkdict(struct vdict *d)
{
	struct val v = {V_DICT, {.d = d}, NULL};
	return v;
}

/* JSON to values; strings point into the json_t, which outlives the render. */
static bool from_json(struct render *r, json_t *j, struct val *out)
{
	switch (json_typeof(j)) {
	case JSON_NULL:
		out->t = V_NONE;
		return true;
	case JSON_TRUE:
		*out = mkbool(true);
		return true;
	case JSON_FALSE:
		*out = mkbool(false);
		return true;
	case JSON_INTEGER:
		*out = mkint(json_integer_value(j));
		return true;
	case JSON_REAL:
		*out = mkfloat(json_real_value(j));
		return true;
	case JSON_STRING:
		*out = mkstr(json_string_value(j), json_string_length(j));
		return true;
	case JSON_ARRAY: {
		struct vlist *l = list_new(r, json_array_size(j), 0);
		if (!l)
			return false;
		for (size_t i = 0; i < l->n; i++)
			if (!from_json(r, json_array_get(j, i), &l->v[i]))
				return false;
		*out = mklist(l);
		return true;
	}
	case JSON_OBJECT: {
		struct vdict *d = dict_new(r, json_object_size(j), 0);
		if (!d)
			return false;
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v)
		{
			d->k[d->n] = mkstr(k, strlen(k));
			if (!from_json(r, v, &d->v[d->n++]))
				return false;
		}
		*out = mkdict(d);
		return true;
	}
	}
	return false;
}

static bool truthy(const struct val *v)
{
	switch (v->t) {
	case V_UNDEF:
	case V_NONE:
		return false;
	case V_BOOL:
		return v->u.b;
	case V_INT:
		return v->u.i != 0;
	case V_FLOAT:
		return v->u.f != 0;
	case V_STR:
		return v->u.s.n != 0;
	case V_LIST:
		return v->u.l->n != 0;
	case V_DICT:
		return v->u.d->ns || v->u.d->n != 0;
	default:
		return true;
	}
}

static bool is_num(const struct val *v)
{
	return v->t == V_INT || v->t == V_FLOAT || v->t == V_BOOL;
}
static double num(const struct val *v)
{
	return v->t == V_FLOAT ? v->u.f : v->t == V_INT ? (double)v->u.i : v->u.b;
}
static int64_t inum(const struct val *v)
{
	return v->t == V_INT ? v->u.i : v->t == V_BOOL ? v->u.b : (int64_t)v->u.f;
}

static bool val_eq(const struct val *a, const struct val *b)
{
	if (is_num(a) && is_num(b)) {
		if (a->t != V_FLOAT && b->t != V_FLOAT)
			return inum(a) == inum(b);
		return num(a) == num(b);
	}
	if (a->t != b->t)
		return false;
	switch (a->t) {
	case V_UNDEF:
	case V_NONE:
		return true;
	case V_STR:
		return a->u.s.n == b->u.s.n && !memcmp(a->u.s.p, b->u.s.p, a->u.s.n);
	case V_LIST:
		if (a->u.l->n != b->u.l->n)
			return false;
		for (size_t i = 0; i < a->u.l->n; i++)
			if (!val_eq(&a->u.l->v[i], &b->u.l->v[i]))
				return false;
		return true;
	case V_DICT:
		if (a->u.d == b->u.d)
			return true;
		if (a->u.d->n != b->u.d->n || a->u.d->ns || b->u.d->ns)
			return false;
		for (size_t i = 0; i < a->u.d->n; i++) {
			struct val *o = dict_find(b->u.d, &a->u.d->k[i]);
			if (!o || !val_eq(&a->u.d->v[i], o))
				return false;
		}
		return true;
	case V_FUNC:
		return a->u.fn == b->u.fn;
	case V_MACRO:
		return a->u.macro == b->u.macro;
	default:
		return false;
	}
}

/* Python's float repr: the shortest digits that read back to the same double. */
static void fmt_float(double f, char *out, size_t n)
{
	if (isnan(f)) {
		snprintf(out, n, "nan");
		return;
	}
	if (isinf(f)) {
		snprintf(out, n, f < 0 ? "-inf" : "inf");
		return;
	}
	char e[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(e, sizeof e, "%.*e", prec - 1, f);
		if (strtod(e, NULL) == f)
			break;
	}
	/* e is "-d.ddde±XX": take the digits and the exponent apart. */
	char digits[24];
	size_t nd = 0;
	const char *q = e;
	bool neg = *q == '-';
	if (neg)
		q++;
	for (; *q && *q != 'e'; q++)
		if (*q != '.')
			digits[nd++] = *q;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	int exp = (int)strtol(q + 1, NULL, 10);
	size_t o = 0;
	char buf[64];
	if (neg)
		buf[o++] = '-';
	if (exp >= 16 || exp < -4) {
		buf[o++] = digits[0];
		if (nd > 1) {
			buf[o++] = '.';
			memcpy(buf + o, digits + 1, nd - 1);
			o += nd - 1;
		}
		snprintf(buf + o, sizeof buf - o, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
	} else if (exp < 0) {
		buf[o++] = '0';
		buf[o++] = '.';
		for (int k = 0; k < -exp - 1; k++)
			buf[o++] = '0';
		memcpy(buf + o, digits, nd);
		o += nd;
		buf[o] = '\0';
	} else {
		for (int k = 0; k <= exp; k++)
			buf[o++] = (size_t)k < nd ? digits[k] : '0';
		buf[o++] = '.';
		if ((size_t)exp + 1 < nd) {
			memcpy(buf + o, digits + exp + 1, nd - (size_t)exp - 1);
			o += nd - (size_t)exp - 1;
		} else {
			buf[o++] = '0';
		}
		buf[o] = '\0';
	}
	snprintf(out, n, "%s", buf);
}

static enum llm_err put_repr(struct llm_buf *b, const struct val *v);

/* Python's repr of a string: single quotes unless the text has a ' and no ". */
static enum llm_err put_str_repr(struct llm_buf *b, const char *s, size_t n)
{
	char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
	enum llm_err e = llm_buf_putc(b, q);
	for (size_t i = 0; i < n && !e; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == (unsigned char)q || c == '\\')
			e = llm_buf_printf(b, "\\%c", c);
		else if (c == '\n')
			e = llm_buf_puts(b, "\\n");
		else if (c == '\r')
			e = llm_buf_puts(b, "\\r");
		else if (c == '\t')
			e = llm_buf_puts(b, "\\t");
		else if (c < 0x20 || c == 0x7f)
			e = llm_buf_printf(b, "\\x%02x", c);
		else
			e = llm_buf_putc(b, (char)c);
	}
	return e ? e : llm_buf_putc(b, q);
}

/* str(v) as Python gives it. */
static enum llm_err put_str(struct llm_buf *b, const struct val *v)
{
	char tmp[64];
	switch (v->t) {
	case V_UNDEF:
		return LLM_OK;
	case V_NONE:
		return llm_buf_puts(b, "None");
	case V_BOOL:
		return llm_buf_puts(b, v->u.b ? "True" : "False");
	case V_INT:
		return llm_buf_printf(b, "%" PRId64, v->u.i);
	case V_FLOAT:
		fmt_float(v->u.f, tmp, sizeof tmp);
		return llm_buf_puts(b, tmp);
	case V_STR:
		return llm_buf_append(b, v->u.s.p, v->u.s.n);
	default:
		return put_repr(b, v);
	}
}

static enum llm_err put_repr(struct llm_buf *b, const struct val *v)
{
	enum llm_err e = LLM_OK;
	switch (v->t) {
	case V_STR:
		return put_str_repr(b, v->u.s.p, v->u.s.n);
	case V_LIST:
		e = llm_buf_putc(b, '[');
		for (size_t i = 0; i < v->u.l->n && !e; i++) {
			if (i)
				e = llm_buf_puts(b, ", ");
			if (!e)
				e = put_repr(b, &v->u.l->v[i]);
		}
		return e ? e : llm_buf_putc(b, ']');
	case V_DICT:
		if (v->u.d->ns)
			return llm_buf_puts(b, "<Namespace>");
		e = llm_buf_putc(b, '{');
		for (size_t i = 0; i < v->u.d->n && !e; i++) {
			if (i)
				e = llm_buf_puts(b, ", ");
			if (!e)
				e = put_repr(b, &v->u.d->k[i]);
			if (!e)
				e = llm_buf_puts(b, ": ");
			if (!e)
				e = put_repr(b, &v->u.d->v[i]);
		}
		return e ? e : llm_buf_putc(b, '}');
	case V_FUNC:
	case V_MACRO:
		return llm_buf_puts(b, "<function>");
	default:
		return put_str(b, v);
	}
}

/* json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=sort) as transformers' tojson. */
static enum llm_err put_json(struct llm_buf *b, const struct val *v, int indent, int level,
			     bool sort, bool *bad)
{
	enum llm_err e = LLM_OK;
	char tmp[64];
	switch (v->t) {
	case V_NONE:
		return llm_buf_puts(b, "null");
	case V_BOOL:
		return llm_buf_puts(b, v->u.b ? "true" : "false");
	case V_INT:
		return llm_buf_printf(b, "%" PRId64, v->u.i);
	case V_FLOAT:
		if (isnan(v->u.f))
			return llm_buf_puts(b, "NaN");
		if (isinf(v->u.f))
			return llm_buf_puts(b, v->u.f < 0 ? "-Infinity" : "Infinity");
		fmt_float(v->u.f, tmp, sizeof tmp);
		return llm_buf_puts(b, tmp);
	case V_STR:
		e = llm_buf_putc(b, '"');
		for (size_t i = 0; i < v->u.s.n && !e; i++) {
			unsigned char c = (unsigned char)v->u.s.p[i];
			switch (c) {
			case '"':
				e = llm_buf_puts(b, "\\\"");
				break;
			case '\\':
				e = llm_buf_puts(b, "\\\\");
				break;
			case '\n':
				e = llm_buf_puts(b, "\\n");
				break;
			case '\r':
				e = llm_buf_puts(b, "\\r");
				break;
			case '\t':
				e = llm_buf_puts(b, "\\t");
				break;
			case '\b':
				e = llm_buf_puts(b, "\\b");
				break;
			case '\f':
				e = llm_buf_puts(b, "\\f");
				break;
			default:
				e = c < 0x20 ? llm_buf_printf(b, "\\u%04x", c)
					     : llm_buf_putc(b, (char)c);
			}
		}
		return e ? e : llm_buf_putc(b, '"');
	case V_LIST:
	case V_DICT: {
		bool list = v->t == V_LIST;
		size_t n = list ? v->u.l->n : v->u.d->n;
		if (!list && v->u.d->ns) {
			*bad = true;
			return LLM_OK;
		}
		if (!n)
			return llm_buf_puts(b, list ? "[]" : "{}");
		size_t *order = NULL;
		if (!list && sort) {
			order = malloc(n * sizeof *order);
			if (!order)
				return LLM_ERR_NOMEM;
			for (size_t i = 0; i < n; i++)
				order[i] = i;
			/* Insertion sort by key bytes: dicts in templates are small. */
			for (size_t i = 1; i < n; i++)
				for (size_t k = i; k > 0; k--) {
					const struct val *x = &v->u.d->k[order[k - 1]],
							 *y = &v->u.d->k[order[k]];
					if (x->t != V_STR || y->t != V_STR)
						break;
					size_t m = x->u.s.n < y->u.s.n ? x->u.s.n : y->u.s.n;
					int c = memcmp(x->u.s.p, y->u.s.p, m);
					if (c < 0 || (c == 0 && x->u.s.n <= y->u.s.n))
						break;
					size_t t = order[k];
					order[k] = order[k - 1];
					order[k - 1] = t;
				}
		}
		e = llm_buf_putc(b, list ? '[' : '{');
		for (size_t i = 0; i < n && !e; i++) {
			if (i)
				e = llm_buf_puts(b, indent >= 0 ? "," : ", ");
			if (!e && indent >= 0) {
				e = llm_buf_putc(b, '\n');
				for (int k = 0; k < indent * (level + 1) && !e; k++)
					e = llm_buf_putc(b, ' ');
			}
			if (e)
				break;
			if (list) {
				e = put_json(b, &v->u.l->v[i], indent, level + 1, sort, bad);
				continue;
			}
			size_t k = order ? order[i] : i;
			const struct val *key = &v->u.d->k[k];
			if (key->t == V_STR) {
				e = put_json(b, key, indent, level + 1, sort, bad);
			} else {
				/* json.dumps turns number and boolean keys into strings. */
				struct llm_buf kb;
				llm_buf_init(&kb, 0);
				e = put_json(&kb, key, -1, 0, sort, bad);
				if (!e)
					e = llm_buf_printf(b, "\"%s\"", kb.data ? kb.data : "");
				llm_buf_free(&kb);
			}
			if (!e)
				e = llm_buf_puts(b, ": ");
			if (!e)
				e = put_json(b, &v->u.d->v[k], indent, level + 1, sort, bad);
		}
		free(order);
		if (!e && indent >= 0) {
			e = llm_buf_putc(b, '\n');
			for (int k = 0; k < indent * level && !e; k++)
				e = llm_buf_putc(b, ' ');
		}
		return e ? e : llm_buf_putc(b, list ? ']' : '}');
	}
	default:
		*bad = true;
		return LLM_OK;
	}
}

/* ---- UTF-8 and strings ----------------------------------------------------------------- */

static size_t cp_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

static size_t cp_count(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i += cp_len((unsigned char)s[i]))
		k++;
	return k;
}

static int32_t cp_at(const char *s, size_t n, size_t i, size_t *len)
{
	utf8proc_int32_t c = 0;
	utf8proc_ssize_t l =
	    utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
	*len = l > 0 ? (size_t)l : 1;
	return l > 0 ? c : (unsigned char)s[i];
}

/* Python's str.isspace(). */
static bool cp_space(int32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
	       c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x3000;
}

static bool in_chars(int32_t c, const struct val *chars)
{
	if (!chars)
		return cp_space(c);
	for (size_t i = 0; i < chars->u.s.n;) {
		size_t l;
		if (cp_at(chars->u.s.p, chars->u.s.n, i, &l) == c)
			return true;
		i += l;
	}
	return false;
}

static struct val strip(struct val s, bool left, bool right, const struct val *chars)
{
	const char *p = s.u.s.p;
	size_t n = s.u.s.n;
	while (left && n) {
		size_t l;
		int32_t c = cp_at(p, n, 0, &l);
		if (!in_chars(c, chars))
			break;
		p += l;
		n -= l;
	}
	while (right && n) {
		size_t i = n - 1;
		while (i > 0 && ((unsigned char)p[i] & 0xc0) == 0x80)
			i--;
		size_t l;
		int32_t c = cp_at(p, n, i, &l);
		if (!in_chars(c, chars))
			break;
		n = i;
	}
	return mkstr(p, n);
}

/* mode: 'l' lower, 'u' upper, 't' title (str.title), 'c' capitalize. */
static bool recase(struct render *r, struct val s, char mode, struct val *out, int line)
{
	char *o = ralloc(r, s.u.s.n * 3 + 4, line);
	if (!o)
		return false;
	size_t k = 0;
	bool prev_cased = false, first = true;
	for (size_t i = 0; i < s.u.s.n;) {
		size_t l;
		int32_t c = cp_at(s.u.s.p, s.u.s.n, i, &l);
		int32_t d;
		bool cased = utf8proc_tolower(c) != c || utf8proc_toupper(c) != c;
		if (mode == 'l')
			d = utf8proc_tolower(c);
		else if (mode == 'u')
			d = utf8proc_toupper(c);
		else if (mode == 't')
			d = prev_cased ? utf8proc_tolower(c) : utf8proc_totitle(c);
		else
			d = first ? utf8proc_totitle(c) : utf8proc_tolower(c);
		prev_cased = cased;
		first = false;
		if (d < 0 || d > 0x10ffff)
			d = c;
		k += llm_unicode_encode((uint32_t)d, o + k);
		i += l;
	}
	*out = mkstr(o, k);
	return true;
}

static bool concat(struct render *r, const char *a, size_t an, const char *b, size_t bn,
		   struct val *out, int line)
{
	char *o = ralloc(r, an + bn + 1, line);
	if (!o)
		return false;
	memcpy(o, a, an);
	memcpy(o + an, b, bn);
	*out = mkstr(o, an + bn);
	return true;
}

/* A value as a string, for ~, join, string and the string filters. */
static bool to_str(struct render *r, const struct val *v, struct val *out, int line)
{
	if (v->t == V_STR) {
		*out = *v;
		return true;
	}
	struct llm_buf b;
	llm_buf_init(&b, 0);
	enum llm_err e = put_str(&b, v);
	bool ok = !e && concat(r, b.data ? b.data : "", b.len, "", 0, out, line);
	llm_buf_free(&b);
	if (e)
		rerr(r, e, line, "out of memory");
	return ok;
}

/* ---- evaluation ---------------------------------------------------------------------- */

static bool eval(struct render *r, const struct node *n, struct val *out);
static bool exec_body(struct render *r, const struct nlist *body);

static bool undefined_error(struct render *r, const struct val *v, int line)
{
	return rerr(r, LLM_ERR_TYPE, line, "%s", v->why ? v->why : "undefined value");
}

static struct val mkundef(struct render *r, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct val mkundef(struct render *r, int line, const char *fmt, ...)
{
	struct val v = undef;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char *s = ralloc(r, strlen(msg) + 1, line);
	if (s) {
		memcpy(s, msg, strlen(msg) + 1);
		v.why = s;
	}
	return v;
}

static bool lookup(struct render *r, const char *name, struct val *out, int line)
{
	size_t nlen = strlen(name);
	for (size_t i = r->nframes; i-- > 0;) {
		if (i < r->floor && i != 0)
			continue;
		struct val *v = dict_find_str(r->frames[i].vars, name, nlen);
		if (v) {
			*out = *v;
			return true;
		}
	}
	struct val *v = dict_find_str(r->globals, name, nlen);
	if (v) {
		*out = *v;
		return true;
	}
	static const struct {
		const char *name;
		int fn;
	} fns[] = {{"raise_exception", F_RAISE},
		   {"namespace", F_NAMESPACE},
		   {"range", F_RANGE},
		   {"dict", F_DICT},
		   {"strftime_now", F_STRFTIME}};
	for (size_t i = 0; i < sizeof fns / sizeof *fns; i++)
		if (!strcmp(name, fns[i].name)) {
			out->t = V_FUNC;
			out->u.fn = fns[i].fn;
			out->why = NULL;
			return true;
		}
	*out = mkundef(r, line, "'%s' is undefined", name);
	return !r->failed;
}

static bool get_attr(struct render *r, const struct val *obj, const char *name, struct val *out,
		     int line)
{
	if (obj->t == V_UNDEF)
		return undefined_error(r, obj, line);
	if (obj->t == V_DICT) {
		struct val *v = dict_find_str(obj->u.d, name, strlen(name));
		if (v) {
			*out = *v;
			return true;
		}
		*out = mkundef(r, line, "'%s object' has no attribute '%s'",
			       obj->u.d->ns ? "Namespace" : "dict", name);
		return !r->failed;
	}
	*out = mkundef(r, line, "'%s' has no attribute '%s'", type_name(obj), name);
	return !r->failed;
}

/* Python's index rules: negative counts from the end. */
static bool norm_index(int64_t i, size_t n, size_t *out)
{
	if (i < 0)
		i += (int64_t)n;
	if (i < 0 || (uint64_t)i >= n)
		return false;
	*out = (size_t)i;
	return true;
}

/* Code point offsets of a string: offs[k] is the byte offset of code point k, offs[n] = len. */
static size_t *cp_offsets(struct render *r, const struct val *s, size_t *count, int line)
{
	size_t n = cp_count(s->u.s.p, s->u.s.n);
	size_t *offs = ralloc(r, (n + 1) * sizeof *offs, line);
	if (!offs)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < s->u.s.n; i += cp_len((unsigned char)s->u.s.p[i]))
		offs[k++] = i;
	offs[n] = s->u.s.n;
	*count = n;
	return offs;
}

static bool get_item(struct render *r, const struct val *obj, const struct val *key,
		     struct val *out, int line)
{
	if (obj->t == V_UNDEF)
		return undefined_error(r, obj, line);
	if (obj->t == V_DICT) {
		struct val *v = dict_find(obj->u.d, key);
		if (v) {
			*out = *v;
			return true;
		}
		struct llm_buf b;
		llm_buf_init(&b, 0);
		put_repr(&b, key);
		*out = mkundef(r, line, "'dict object' has no attribute %s", b.data ? b.data : "");
		llm_buf_free(&b);
		return !r->failed;
	}
	if ((obj->t == V_LIST || obj->t == V_STR) && (key->t == V_INT || key->t == V_BOOL)) {
		size_t i, n;
		if (obj->t == V_LIST) {
			if (norm_index(inum(key), obj->u.l->n, &i)) {
				*out = obj->u.l->v[i];
				return true;
			}
		} else {
			size_t *offs = cp_offsets(r, obj, &n, line);
			if (!offs)
				return false;
			if (norm_index(inum(key), n, &i)) {
				*out = mkstr(obj->u.s.p + offs[i], offs[i + 1] - offs[i]);
				return true;
			}
		}
		*out = mkundef(r, line, "index %" PRId64 " is out of range", inum(key));
		return !r->failed;
	}
	if (key->t == V_STR)
		return get_attr(r, obj, key->u.s.p[key->u.s.n] == '\0' ? key->u.s.p : "?", out,
				line);
	*out = mkundef(r, line, "cannot index a %s", type_name(obj));
	return !r->failed;
}

static bool slice_bound(struct render *r, const struct node *n, int64_t *out, bool *given)
{
	*given = false;
	if (!n)
		return true;
	struct val v;
	if (!eval(r, n, &v))
		return false;
	if (v.t == V_NONE)
		return true;
	if (v.t != V_INT && v.t != V_BOOL)
		return rerr(r, LLM_ERR_TYPE, n->line, "slice indices must be integers");
	*out = inum(&v);
	*given = true;
	return true;
}

static bool do_slice(struct render *r, const struct node *n, struct val *out)
{
	struct val obj;
	if (!eval(r, n->a, &obj))
		return false;
	int64_t lo = 0, hi = 0, step = 1;
	bool glo, ghi, gstep;
	if (!slice_bound(r, n->b, &lo, &glo) || !slice_bound(r, n->c, &hi, &ghi) ||
	    !slice_bound(r, (const struct node *)n->lit.u.macro, &step, &gstep))
		return false;
	if (!gstep)
		step = 1;
	if (step == 0)
		return rerr(r, LLM_ERR_TYPE, n->line, "slice step cannot be zero");
	size_t len;
	size_t *offs = NULL;
	if (obj.t == V_LIST)
		len = obj.u.l->n;
	else if (obj.t == V_STR) {
		if (!(offs = cp_offsets(r, &obj, &len, n->line)))
			return false;
	} else if (obj.t == V_UNDEF)
		return undefined_error(r, &obj, n->line);
	else
		return rerr(r, LLM_ERR_TYPE, n->line, "cannot slice a %s", type_name(&obj));
	int64_t L = (int64_t)len;
	/* Python's slice.indices(). */
	if (step > 0) {
		lo = !glo ? 0 : lo < 0 ? (lo + L < 0 ? 0 : lo + L) : (lo > L ? L : lo);
		hi = !ghi ? L : hi < 0 ? (hi + L < 0 ? 0 : hi + L) : (hi > L ? L : hi);
	} else {
		lo = !glo ? L - 1 : lo < 0 ? (lo + L < 0 ? -1 : lo + L) : (lo >= L ? L - 1 : lo);
		hi = !ghi ? -1 : hi < 0 ? (hi + L < 0 ? -1 : hi + L) : (hi >= L ? L - 1 : hi);
	}
	size_t count = 0;
	for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step)
		count++;
	if (obj.t == V_LIST) {
		struct vlist *l = list_new(r, count, n->line);
		if (!l)
			return false;
		size_t k = 0;
		for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step)
			l->v[k++] = obj.u.l->v[i];
		*out = mklist(l);
		return true;
	}
	if (step == 1) {
		*out = mkstr(obj.u.s.p + offs[lo], count ? offs[hi] - offs[lo] : 0);
		return true;
	}
	char *s = ralloc(r, obj.u.s.n + 1, n->line);
	if (!s)
		return false;
	size_t k = 0;
	for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
		memcpy(s + k, obj.u.s.p + offs[i], offs[i + 1] - offs[i]);
		k += offs[i + 1] - offs[i];
	}
	*out = mkstr(s, k);
	return true;
}

static int val_cmp(struct render *r, const struct val *a, const struct val *b, int line, bool *ok)
{
	*ok = true;
	if (is_num(a) && is_num(b)) {
		double x = num(a), y = num(b);
		return x < y ? -1 : x > y;
	}
	if (a->t == V_STR && b->t == V_STR) {
		size_t m = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
		int c = memcmp(a->u.s.p, b->u.s.p, m);
		return c ? c : (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
	}
	if (a->t == V_LIST && b->t == V_LIST) {
		for (size_t i = 0; i < a->u.l->n && i < b->u.l->n; i++) {
			int c = val_cmp(r, &a->u.l->v[i], &b->u.l->v[i], line, ok);
			if (!*ok || c)
				return c;
		}
		return (a->u.l->n > b->u.l->n) - (a->u.l->n < b->u.l->n);
	}
	*ok = false;
	if (a->t == V_UNDEF)
		undefined_error(r, a, line);
	else if (b->t == V_UNDEF)
		undefined_error(r, b, line);
	else
		rerr(r, LLM_ERR_TYPE, line, "cannot compare %s with %s", type_name(a),
		     type_name(b));
	return 0;
}

static bool contains(struct render *r, const struct val *hay, const struct val *needle, bool *res,
		     int line)
{
	switch (hay->t) {
	case V_STR:
		if (needle->t != V_STR)
			return rerr(r, LLM_ERR_TYPE, line,
				    "'in <string>' needs a string on the left");
		*res = !needle->u.s.n ||
		       (needle->u.s.n <= hay->u.s.n &&
			memmem(hay->u.s.p, hay->u.s.n, needle->u.s.p, needle->u.s.n));
		return true;
	case V_LIST:
		*res = false;
		for (size_t i = 0; i < hay->u.l->n && !*res; i++)
			*res = val_eq(&hay->u.l->v[i], needle);
		return true;
	case V_DICT:
		*res = dict_find(hay->u.d, needle) != NULL;
		return true;
	case V_UNDEF:
		return undefined_error(r, hay, line);
	default:
		return rerr(r, LLM_ERR_TYPE, line, "argument of type %s is not iterable",
			    type_name(hay));
	}
}

static bool arith(struct render *r, int op, const struct val *a, const struct val *b,
		  struct val *out, int line)
{
	if (op == '~') {
		struct val x, y;
		return to_str(r, a, &x, line) && to_str(r, b, &y, line) &&
		       concat(r, x.u.s.p, x.u.s.n, y.u.s.p, y.u.s.n, out, line);
	}
	if (a->t == V_UNDEF)
		return undefined_error(r, a, line);
	if (b->t == V_UNDEF)
		return undefined_error(r, b, line);
	if (op == '+' && a->t == V_STR && b->t == V_STR)
		return concat(r, a->u.s.p, a->u.s.n, b->u.s.p, b->u.s.n, out, line);
	if (op == '+' && a->t == V_LIST && b->t == V_LIST) {
		struct vlist *l = list_new(r, a->u.l->n + b->u.l->n, line);
		if (!l)
			return false;
		if (a->u.l->n)
			memcpy(l->v, a->u.l->v, a->u.l->n * sizeof *l->v);
		if (b->u.l->n)
			memcpy(l->v + a->u.l->n, b->u.l->v, b->u.l->n * sizeof *l->v);
		*out = mklist(l);
		return true;
	}
	if (op == '*' && ((a->t == V_STR && b->t == V_INT) || (a->t == V_INT && b->t == V_STR))) {
		const struct val *s = a->t == V_STR ? a : b;
		int64_t k = a->t == V_INT ? a->u.i : b->u.i;
		if (k < 0)
			k = 0;
		if (s->u.s.n && (uint64_t)k > (64u << 20) / s->u.s.n)
			return rerr(r, LLM_ERR_TOO_BIG, line, "string repetition too large");
		char *o = ralloc(r, s->u.s.n * (size_t)k + 1, line);
		if (!o)
			return false;
		for (int64_t i = 0; i < k; i++)
			memcpy(o + (size_t)i * s->u.s.n, s->u.s.p, s->u.s.n);
		*out = mkstr(o, s->u.s.n * (size_t)k);
		return true;
	}
	if (!is_num(a) || !is_num(b)) {
		static const char *const names[] = {"+", "-", "*", "/", "%", "//", "**"};
		const char *name = op == '+'	       ? names[0]
				   : op == '-'	       ? names[1]
				   : op == '*'	       ? names[2]
				   : op == '/'	       ? names[3]
				   : op == '%'	       ? names[4]
				   : op == OP_FLOORDIV ? names[5]
						       : names[6];
		return rerr(r, LLM_ERR_TYPE, line, "unsupported operand types for %s: %s and %s",
			    name, type_name(a), type_name(b));
	}
	bool fl = a->t == V_FLOAT || b->t == V_FLOAT;
	if (op == '/' || (fl && op != OP_FLOORDIV && op != '%')) {
		double x = num(a), y = num(b), z;
		if ((op == '/') && y == 0)
			return rerr(r, LLM_ERR_TYPE, line, "division by zero");
		z = op == '+'	? x + y
		    : op == '-' ? x - y
		    : op == '*' ? x * y
		    : op == '/' ? x / y
				: pow(x, y);
		*out = mkfloat(z);
		return true;
	}
	if (fl) {
		double x = num(a), y = num(b);
		if (y == 0)
			return rerr(r, LLM_ERR_TYPE, line, "division by zero");
		double q = floor(x / y);
		*out = mkfloat(op == OP_FLOORDIV ? q : x - q * y);
		return true;
	}
	int64_t x = inum(a), y = inum(b), z = 0;
	bool ovf = false;
	switch (op) {
	case '+':
		ovf = __builtin_add_overflow(x, y, &z);
		break;
	case '-':
		ovf = __builtin_sub_overflow(x, y, &z);
		break;
	case '*':
		ovf = __builtin_mul_overflow(x, y, &z);
		break;
	case OP_FLOORDIV:
	case '%':
		if (y == 0)
			return rerr(r, LLM_ERR_TYPE, line, "division by zero");
		if (x == INT64_MIN && y == -1) {
			ovf = true;
			break;
		}
		z = x / y;
		if ((x % y != 0) && ((x < 0) != (y < 0)))
			z--; /* floor, as Python */
		if (op == '%')
			z = x - z * y;
		break;
	case OP_POW:
		if (y < 0) {
			*out = mkfloat(pow((double)x, (double)y));
			return true;
		}
		z = 1;
		for (int64_t i = 0; i < y && !ovf; i++)
			ovf = __builtin_mul_overflow(z, x, &z);
		break;
	}
	if (ovf)
		return rerr(r, LLM_ERR_RANGE, line, "integer overflow");
	*out = mkint(z);
	return true;
}

/* Arguments of a call, evaluated: positional first, keywords looked up by name. */
struct args {
	struct val pos[8];
	size_t npos;
	const char *kwn[8];
	struct val kwv[8];
	size_t nkw;
};

static bool eval_args(struct render *r, const struct node *n, struct args *a)
{
	memset(a, 0, sizeof *a);
	for (size_t i = 0; i < n->args.n; i++) {
		struct val v;
		if (!eval(r, n->args.v[i], &v))
			return false;
		const char *kw = n->kwnames ? n->kwnames[i] : NULL;
		if (kw) {
			if (a->nkw == 8)
				return rerr(r, LLM_ERR_TYPE, n->line, "too many arguments");
			a->kwn[a->nkw] = kw;
			a->kwv[a->nkw++] = v;
		} else {
			if (a->npos == 8)
				return rerr(r, LLM_ERR_TYPE, n->line, "too many arguments");
			a->pos[a->npos++] = v;
		}
	}
	return true;
}

/* A keyword argument by name; NULL when absent. */
static const struct val *kwarg(const struct args *a, const char *name)
{
	for (size_t i = 0; name && i < a->nkw; i++)
		if (!strcmp(a->kwn[i], name))
			return &a->kwv[i];
	return NULL;
}

/* Argument k by position or by keyword name; NULL when absent. */
static const struct val *arg(const struct args *a, size_t k, const char *name)
{
	if (k < a->npos)
		return &a->pos[k];
	return kwarg(a, name);
}

static bool need_str(struct render *r, const struct val *v, const char *what, int line)
{
	if (v->t == V_STR)
		return true;
	if (v->t == V_UNDEF)
		return undefined_error(r, v, line);
	return rerr(r, LLM_ERR_TYPE, line, "%s expects a string, not %s", what, type_name(v));
}

/* The items of an iterable as a list: lists as they are, dict keys, string code points. */
static bool iterate(struct render *r, const struct val *v, struct vlist **out, int line)
{
	static struct vlist empty;
	switch (v->t) {
	case V_LIST:
		*out = v->u.l;
		return true;
	case V_UNDEF:
	case V_NONE:
		if (v->t == V_NONE)
			return rerr(r, LLM_ERR_TYPE, line, "'NoneType' object is not iterable");
		*out = &empty;
		return true;
	case V_DICT: {
		struct vlist *l = list_new(r, v->u.d->n, line);
		if (!l)
			return false;
		memcpy(l->v, v->u.d->k, v->u.d->n * sizeof *l->v);
		*out = l;
		return true;
	}
	case V_STR: {
		size_t n;
		size_t *offs = cp_offsets(r, v, &n, line);
		struct vlist *l = offs ? list_new(r, n, line) : NULL;
		if (!l)
			return false;
		for (size_t i = 0; i < n; i++)
			l->v[i] = mkstr(v->u.s.p + offs[i], offs[i + 1] - offs[i]);
		*out = l;
		return true;
	}
	default:
		return rerr(r, LLM_ERR_TYPE, line, "%s is not iterable", type_name(v));
	}
}

static bool apply_test(struct render *r, const char *name, const struct val *v,
		       const struct args *a, bool *res, int line);
static bool apply_filter(struct render *r, const char *name, const struct val *v,
			 const struct args *a, struct val *out, int line);

/* dict.items() as a list of [key, value] pairs. */
static bool dict_items(struct render *r, const struct vdict *d, struct val *out, int line)
{
	struct vlist *l = list_new(r, d->n, line);
	if (!l)
		return false;
	for (size_t i = 0; i < d->n; i++) {
		struct vlist *pair = list_new(r, 2, line);
		if (!pair)
			return false;
		pair->v[0] = d->k[i];
		pair->v[1] = d->v[i];
		l->v[i] = mklist(pair);
	}
	*out = mklist(l);
	return true;
}

static bool split_str(struct render *r, const struct val *s, const struct val *sep, int64_t max,
		      struct val *out, int line)
{
	struct vlist *l = list_new(r, 0, line);
	if (!l)
		return false;
	size_t cap = 0;
	const char *p = s->u.s.p, *end = p + s->u.s.n;
	for (;;) {
		const char *start, *stop, *resume;
		if (sep) {
			start = p;
			const char *m = (max < 0 || (int64_t)l->n < max)
					    ? memmem(p, (size_t)(end - p), sep->u.s.p, sep->u.s.n)
					    : NULL;
			stop = m ? m : end;
			resume = m ? m + sep->u.s.n : NULL;
		} else {
			while (p < end && is_space(*p))
				p++;
			if (p == end)
				break;
			start = p;
			if (max >= 0 && (int64_t)l->n >= max) {
				stop = end;
				while (stop > start && is_space(stop[-1]))
					stop--;
				resume = NULL;
			} else {
				stop = p;
				while (stop < end && !is_space(*stop))
					stop++;
				resume = stop;
			}
		}
		if (l->n == cap) {
			cap = cap ? cap * 2 : 8;
			struct val *v = ralloc(r, cap * sizeof *v, line);
			if (!v)
				return false;
			if (l->n)
				memcpy(v, l->v, l->n * sizeof *v);
			l->v = v;
		}
		l->v[l->n++] = mkstr(start, (size_t)(stop - start));
		if (!resume)
			break;
		p = resume;
	}
	*out = mklist(l);
	return true;
}

static bool replace_str(struct render *r, const struct val *s, const struct val *from,
			const struct val *to, int64_t count, struct val *out, int line)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	enum llm_err e = LLM_OK;
	const char *p = s->u.s.p, *end = p + s->u.s.n;
	int64_t done = 0;
	if (!from->u.s.n) {
		/* Python inserts the replacement between every code point. */
		for (size_t i = 0; i <= s->u.s.n && !e;) {
			if (count < 0 || done < count) {
				e = llm_buf_append(&b, to->u.s.p, to->u.s.n);
				done++;
			}
			if (i == s->u.s.n)
				break;
			size_t l = cp_len((unsigned char)s->u.s.p[i]);
			if (!e)
				e = llm_buf_append(&b, s->u.s.p + i, l);
			i += l;
		}
	} else {
		while (!e && p <= end) {
			const char *m = (count < 0 || done < count)
					    ? memmem(p, (size_t)(end - p), from->u.s.p, from->u.s.n)
					    : NULL;
			if (!m) {
				e = llm_buf_append(&b, p, (size_t)(end - p));
				break;
			}
			e = llm_buf_append(&b, p, (size_t)(m - p));
			if (!e)
				e = llm_buf_append(&b, to->u.s.p, to->u.s.n);
			p = m + from->u.s.n;
			done++;
		}
	}
	bool ok = !e && concat(r, b.data ? b.data : "", b.len, "", 0, out, line);
	llm_buf_free(&b);
	if (e)
		rerr(r, e, line, "out of memory");
	return ok;
}

static bool call_method(struct render *r, const struct val *obj, const char *name,
			const struct args *a, struct val *out, int line)
{
	if (obj->t == V_STR) {
		const struct val *x = arg(a, 0, NULL), *y = arg(a, 1, NULL);
		if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
			if (x && x->t != V_NONE && !need_str(r, x, name, line))
				return false;
			*out = strip(*obj, name[0] != 'r', name[0] != 'l',
				     x && x->t == V_STR ? x : NULL);
			return true;
		}
		if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
		    !strcmp(name, "capitalize"))
			return recase(r, *obj,
				      name[0] == 'u'   ? 'u'
				      : name[0] == 'l' ? 'l'
				      : name[0] == 't' ? 't'
						       : 'c',
				      out, line);
		if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
			if (!x)
				return rerr(r, LLM_ERR_TYPE, line, "%s() needs an argument", name);
			struct vlist one = {1, (struct val *)x};
			const struct vlist *cands = x->t == V_LIST ? x->u.l : &one;
			bool res = false;
			for (size_t i = 0; i < cands->n && !res; i++) {
				const struct val *c = &cands->v[i];
				if (!need_str(r, c, name, line))
					return false;
				res = c->u.s.n <= obj->u.s.n &&
				      !memcmp(name[0] == 's' ? obj->u.s.p
							     : obj->u.s.p + obj->u.s.n - c->u.s.n,
					      c->u.s.p, c->u.s.n);
			}
			*out = mkbool(res);
			return true;
		}
		if (!strcmp(name, "split")) {
			const struct val *sep = arg(a, 0, "sep"), *mx = arg(a, 1, "maxsplit");
			if (sep && sep->t == V_NONE)
				sep = NULL;
			if (sep && (!need_str(r, sep, "split", line)))
				return false;
			if (sep && !sep->u.s.n)
				return rerr(r, LLM_ERR_TYPE, line, "empty separator");
			return split_str(r, obj, sep, mx ? inum(mx) : -1, out, line);
		}
		if (!strcmp(name, "replace")) {
			if (!x || !y || !need_str(r, x, name, line) || !need_str(r, y, name, line))
				return r->failed ? false
						 : rerr(r, LLM_ERR_TYPE, line,
							"replace() needs two strings");
			const struct val *c = arg(a, 2, "count");
			return replace_str(r, obj, x, y, c ? inum(c) : -1, out, line);
		}
		if (!strcmp(name, "find") || !strcmp(name, "count")) {
			if (!x || !need_str(r, x, name, line))
				return r->failed ? false
						 : rerr(r, LLM_ERR_TYPE, line,
							"%s() needs a string", name);
			if (name[0] == 'f') {
				const char *m = memmem(obj->u.s.p, obj->u.s.n, x->u.s.p, x->u.s.n);
				*out = mkint(
				    m ? (int64_t)cp_count(obj->u.s.p, (size_t)(m - obj->u.s.p))
				      : -1);
				return true;
			}
			int64_t k = 0;
			const char *p = obj->u.s.p, *end = p + obj->u.s.n;
			if (!x->u.s.n) {
				*out = mkint((int64_t)cp_count(p, obj->u.s.n) + 1);
				return true;
			}
			for (const char *m; (m = memmem(p, (size_t)(end - p), x->u.s.p, x->u.s.n));
			     p = m + x->u.s.n)
				k++;
			*out = mkint(k);
			return true;
		}
	}
	if (obj->t == V_DICT && !obj->u.d->ns) {
		if (!strcmp(name, "items"))
			return dict_items(r, obj->u.d, out, line);
		if (!strcmp(name, "keys") || !strcmp(name, "values")) {
			struct vlist *l = list_new(r, obj->u.d->n, line);
			if (!l)
				return false;
			if (obj->u.d->n)
				memcpy(l->v, name[0] == 'k' ? obj->u.d->k : obj->u.d->v,
				       obj->u.d->n * sizeof *l->v);
			*out = mklist(l);
			return true;
		}
		if (!strcmp(name, "get")) {
			const struct val *k = arg(a, 0, NULL), *d = arg(a, 1, NULL);
			if (!k)
				return rerr(r, LLM_ERR_TYPE, line, "get() needs a key");
			struct val *v = dict_find(obj->u.d, k);
			if (v)
				*out = *v;
			else if (d)
				*out = *d;
			else
				out->t = V_NONE;
			return true;
		}
	}
	if (obj->t == V_UNDEF)
		return undefined_error(r, obj, line);
	return rerr(r, LLM_ERR_TYPE, line, "%s has no method '%s'", type_name(obj), name);
}

static bool call_macro(struct render *r, const struct node *m, const struct args *a,
		       struct val *out, int line)
{
	struct vdict *vars = dict_new(r, 0, line);
	if (!vars)
		return false;
	for (size_t i = 0; i < m->args.n; i++) {
		const struct node *param = m->args.v[i];
		const struct val *v = arg(a, i, param->name);
		struct val dv = undef;
		if (!v && param->a) {
			if (!eval(r, param->a, &dv))
				return false;
			v = &dv;
		}
		if (!dict_set_str(r, vars, param->name, v ? *v : undef, line))
			return false;
	}
	if (r->nframes == r->capframes) {
		size_t cap = r->capframes * 2;
		struct frame *f = realloc(r->frames, cap * sizeof *f);
		if (!f)
			return rerr(r, LLM_ERR_NOMEM, line, "out of memory");
		r->frames = f;
		r->capframes = cap;
	}
	if (r->nframes > 200)
		return rerr(r, LLM_ERR_TOO_BIG, line, "macro calls nested too deeply");
	size_t floor = r->floor, nframes = r->nframes;
	r->frames[r->nframes++].vars = vars;
	r->floor = nframes;
	/* The body renders into a string: redirect the output, then restore it. */
	struct llm_buf *saved = r->out, buf;
	llm_buf_init(&buf, saved->max);
	r->out = &buf;
	r->capture_depth++;
	bool ok = exec_body(r, &m->body);
	r->capture_depth--;
	r->out = saved;
	r->nframes = nframes;
	r->floor = floor;
	r->ctl = 0;
	ok = ok && concat(r, buf.data ? buf.data : "", buf.len, "", 0, out, line);
	llm_buf_free(&buf);
	return ok;
}

static bool call(struct render *r, const struct node *n, struct val *out)
{
	struct args a;
	if (n->a->k == E_ATTR) {
		struct val obj;
		if (!eval(r, n->a->a, &obj))
			return false;
		/* An attribute that holds a function (ns.f, a macro in a dict) is called as is. */
		if (obj.t == V_DICT) {
			struct val *f = dict_find_str(obj.u.d, n->a->name, strlen(n->a->name));
			if (f && (f->t == V_FUNC || f->t == V_MACRO))
				goto callee;
		}
		return eval_args(r, n, &a) && call_method(r, &obj, n->a->name, &a, out, n->line);
	}
callee:;
	struct val f;
	if (!eval(r, n->a, &f) || !eval_args(r, n, &a))
		return false;
	if (f.t == V_MACRO)
		return call_macro(r, f.u.macro, &a, out, n->line);
	if (f.t != V_FUNC) {
		if (f.t == V_UNDEF)
			return undefined_error(r, &f, n->line);
		return rerr(r, LLM_ERR_TYPE, n->line, "%s is not callable", type_name(&f));
	}
	switch (f.u.fn) {
	case F_RAISE: {
		struct val msg = mkstr("", 0);
		if (a.npos && !to_str(r, &a.pos[0], &msg, n->line))
			return false;
		return rerr(r, LLM_ERR_CHECK, n->line, "%.*s", (int)msg.u.s.n, msg.u.s.p);
	}
	case F_NAMESPACE:
	case F_DICT: {
		struct vdict *d = dict_new(r, 0, n->line);
		if (!d)
			return false;
		d->ns = f.u.fn == F_NAMESPACE;
		if (a.npos && a.pos[0].t == V_DICT)
			for (size_t i = 0; i < a.pos[0].u.d->n; i++)
				if (!dict_set(r, d, a.pos[0].u.d->k[i], a.pos[0].u.d->v[i],
					      n->line))
					return false;
		for (size_t i = 0; i < a.nkw; i++)
			if (!dict_set_str(r, d, a.kwn[i], a.kwv[i], n->line))
				return false;
		*out = mkdict(d);
		return true;
	}
	case F_RANGE: {
		int64_t lo = 0, hi = 0, step = 1;
		for (size_t i = 0; i < a.npos; i++)
			if (a.pos[i].t != V_INT)
				return rerr(r, LLM_ERR_TYPE, n->line, "range() takes integers");
		if (a.npos == 1)
			hi = a.pos[0].u.i;
		else if (a.npos >= 2) {
			lo = a.pos[0].u.i;
			hi = a.pos[1].u.i;
			if (a.npos >= 3)
				step = a.pos[2].u.i;
		} else
			return rerr(r, LLM_ERR_TYPE, n->line, "range() needs an argument");
		if (step == 0)
			return rerr(r, LLM_ERR_TYPE, n->line, "range() step cannot be zero");
		int64_t count = step > 0 ? (hi > lo ? (hi - lo + step - 1) / step : 0)
					 : (lo > hi ? (lo - hi - step - 1) / -step : 0);
		if (count > 1000000)
			return rerr(r, LLM_ERR_TOO_BIG, n->line, "range() too long");
		struct vlist *l = list_new(r, (size_t)count, n->line);
		if (!l)
			return false;
		for (int64_t i = 0; i < count; i++)
			l->v[i] = mkint(lo + i * step);
		*out = mklist(l);
		return true;
	}
	case F_STRFTIME: {
		if (!a.npos || !need_str(r, &a.pos[0], "strftime_now", n->line))
			return r->failed ? false
					 : rerr(r, LLM_ERR_TYPE, n->line,
						"strftime_now() needs a format");
		/* Reproducible builds set SOURCE_DATE_EPOCH; honour it so a rerun gives the same
		 * bytes. */
		time_t now = time(NULL);
		const char *sde = getenv("SOURCE_DATE_EPOCH");
		if (sde && *sde) {
			char *end;
			long long v = strtoll(sde, &end, 10);
			if (!*end)
				now = (time_t)v;
		}
		struct tm tm;
		gmtime_r(&now, &tm);
		char fmt[128], buf[256];
		snprintf(fmt, sizeof fmt, "%.*s", (int)a.pos[0].u.s.n, a.pos[0].u.s.p);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		/* The format is the template's, as Python's strftime takes it. */
		size_t k = strftime(buf, sizeof buf, fmt, &tm);
#pragma GCC diagnostic pop
		return concat(r, buf, k, "", 0, out, n->line);
	}
	}
	return rerr(r, LLM_ERR_TYPE, n->line, "not callable");
}

static bool eval(struct render *r, const struct node *n, struct val *out)
{
	if (r->failed)
		return false;
	switch (n->k) {
	case E_LIT:
		*out = n->lit;
		return true;
	case E_NAME:
		return lookup(r, n->name, out, n->line);
	case E_ATTR: {
		struct val obj;
		return eval(r, n->a, &obj) && get_attr(r, &obj, n->name, out, n->line);
	}
	case E_ITEM: {
		struct val obj, key;
		return eval(r, n->a, &obj) && eval(r, n->b, &key) &&
		       get_item(r, &obj, &key, out, n->line);
	}
	case E_SLICE:
		return do_slice(r, n, out);
	case E_CALL:
		return call(r, n, out);
	case E_FILTER: {
		struct val v;
		struct args a;
		return eval(r, n->a, &v) && eval_args(r, n, &a) &&
		       apply_filter(r, n->name, &v, &a, out, n->line);
	}
	case E_TEST: {
		struct val v;
		struct args a;
		bool res;
		if (!eval(r, n->a, &v) || !eval_args(r, n, &a) ||
		    !apply_test(r, n->name, &v, &a, &res, n->line))
			return false;
		*out = mkbool(n->op ? !res : res);
		return true;
	}
	case E_NEG:
	case E_POS: {
		struct val v;
		if (!eval(r, n->a, &v))
			return false;
		if (v.t == V_UNDEF)
			return undefined_error(r, &v, n->line);
		if (!is_num(&v))
			return rerr(r, LLM_ERR_TYPE, n->line, "bad operand type for unary %c: %s",
				    n->k == E_NEG ? '-' : '+', type_name(&v));
		if (n->k == E_POS)
			*out = v.t == V_BOOL ? mkint(v.u.b) : v;
		else if (v.t == V_FLOAT)
			*out = mkfloat(-v.u.f);
		else if (inum(&v) == INT64_MIN)
			return rerr(r, LLM_ERR_RANGE, n->line, "integer overflow");
		else
			*out = mkint(-inum(&v));
		return true;
	}
	case E_NOT: {
		struct val v;
		if (!eval(r, n->a, &v))
			return false;
		*out = mkbool(!truthy(&v));
		return true;
	}
	case E_AND:
	case E_OR: {
		/* Python returns the deciding operand, not a boolean. */
		if (!eval(r, n->a, out))
			return false;
		if (truthy(out) == (n->k == E_OR))
			return true;
		return eval(r, n->b, out);
	}
	case E_COND: {
		struct val c;
		if (!eval(r, n->b, &c))
			return false;
		if (truthy(&c))
			return eval(r, n->a, out);
		if (n->c)
			return eval(r, n->c, out);
		*out = undef;
		return true;
	}
	case E_BIN: {
		struct val a, b;
		if (!eval(r, n->a, &a) || !eval(r, n->b, &b))
			return false;
		bool res, ok;
		switch (n->op) {
		case OP_EQ:
			*out = mkbool(val_eq(&a, &b));
			return true;
		case OP_NE:
			*out = mkbool(!val_eq(&a, &b));
			return true;
		case '<':
		case '>':
		case OP_LE:
		case OP_GE: {
			int c = val_cmp(r, &a, &b, n->line, &ok);
			if (!ok)
				return false;
			*out = mkbool(n->op == '<'     ? c < 0
				      : n->op == '>'   ? c > 0
				      : n->op == OP_LE ? c <= 0
						       : c >= 0);
			return true;
		}
		case OP_IN:
		case OP_NOTIN:
			if (!contains(r, &b, &a, &res, n->line))
				return false;
			*out = mkbool(n->op == OP_IN ? res : !res);
			return true;
		default:
			return arith(r, n->op, &a, &b, out, n->line);
		}
	}
	case E_LIST:
	case E_TUPLE: {
		struct vlist *l = list_new(r, n->args.n, n->line);
		if (!l)
			return false;
		for (size_t i = 0; i < n->args.n; i++)
			if (!eval(r, n->args.v[i], &l->v[i]))
				return false;
		*out = mklist(l);
		return true;
	}
	case E_DICT: {
		struct vdict *d = dict_new(r, 0, n->line);
		if (!d)
			return false;
		for (size_t i = 0; i + 1 < n->args.n; i += 2) {
			struct val k, v;
			if (!eval(r, n->args.v[i], &k) || !eval(r, n->args.v[i + 1], &v) ||
			    !dict_set(r, d, k, v, n->line))
				return false;
		}
		*out = mkdict(d);
		return true;
	}
	default:
		return rerr(r, LLM_ERR_TYPE, n->line, "not an expression");
	}
}

/* ---- tests and filters ----------------------------------------------------------------- */

static bool apply_test(struct render *r, const char *name, const struct val *v,
		       const struct args *a, bool *res, int line)
{
	const struct val *x = arg(a, 0, NULL);
	if (!strcmp(name, "defined"))
		*res = v->t != V_UNDEF;
	else if (!strcmp(name, "undefined"))
		*res = v->t == V_UNDEF;
	else if (!strcmp(name, "none"))
		*res = v->t == V_NONE;
	else if (!strcmp(name, "string"))
		*res = v->t == V_STR;
	else if (!strcmp(name, "number"))
		*res = v->t == V_INT || v->t == V_FLOAT;
	else if (!strcmp(name, "integer"))
		*res = v->t == V_INT;
	else if (!strcmp(name, "float"))
		*res = v->t == V_FLOAT;
	else if (!strcmp(name, "boolean"))
		*res = v->t == V_BOOL;
	else if (!strcmp(name, "true") || !strcmp(name, "false"))
		*res = v->t == V_BOOL && v->u.b == (name[0] == 't');
	else if (!strcmp(name, "mapping"))
		*res = v->t == V_DICT;
	else if (!strcmp(name, "iterable"))
		*res = v->t == V_LIST || v->t == V_DICT || v->t == V_STR;
	else if (!strcmp(name, "sequence"))
		*res = v->t == V_LIST || v->t == V_DICT || v->t == V_STR;
	else if (!strcmp(name, "callable"))
		*res = v->t == V_FUNC || v->t == V_MACRO;
	else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
		struct val c;
		if (!need_str(r, v, name, line) || !recase(r, *v, name[0], &c, line))
			return false;
		*res = val_eq(&c, v);
	} else if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
		if (v->t != V_INT)
			return rerr(r, LLM_ERR_TYPE, line, "'%s' tests an integer", name);
		int64_t d = name[0] == 'd' ? (x && x->t == V_INT ? x->u.i : 0) : 2;
		if (!d)
			return rerr(r, LLM_ERR_TYPE, line, "divisibleby needs a non-zero integer");
		int64_t m = v->u.i % d;
		*res = name[0] == 'o' ? m != 0 : m == 0;
	} else {
		if (!x)
			return rerr(r, LLM_ERR_TYPE, line, "unknown test '%s' or missing argument",
				    name);
		bool ok = true;
		if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "=="))
			*res = val_eq(v, x);
		else if (!strcmp(name, "ne") || !strcmp(name, "!="))
			*res = !val_eq(v, x);
		else if (!strcmp(name, "sameas"))
			*res = v->t == x->t && (v->t == V_NONE || v->t == V_UNDEF ||
						(v->t == V_BOOL && v->u.b == x->u.b) ||
						(v->t != V_BOOL && val_eq(v, x)));
		else if (!strcmp(name, "in"))
			return contains(r, x, v, res, line);
		else if (!strcmp(name, "lt") || !strcmp(name, "le") || !strcmp(name, "gt") ||
			 !strcmp(name, "ge") || !strcmp(name, "lessthan") ||
			 !strcmp(name, "greaterthan")) {
			int c = val_cmp(r, v, x, line, &ok);
			*res = name[0] == 'l'
				   ? (name[1] == 'e' && name[2] == '\0' ? c <= 0 : c < 0)
				   : (name[1] == 'e' && name[2] == '\0' ? c >= 0 : c > 0);
		} else
			return rerr(r, LLM_ERR_TYPE, line, "unknown test '%s'", name);
		return ok;
	}
	return true;
}

/* Filter by a test (select/reject) or by an attribute's test (selectattr/rejectattr). */
static bool select_filter(struct render *r, const char *name, const struct val *v,
			  const struct args *a, struct val *out, int line)
{
	bool attr = strstr(name, "attr") != NULL, keep = name[0] == 's';
	struct vlist *items;
	if (!iterate(r, v, &items, line))
		return false;
	size_t skip = attr ? 1 : 0;
	const struct val *an = attr ? arg(a, 0, NULL) : NULL;
	if (attr && (!an || !need_str(r, an, name, line)))
		return r->failed ? false
				 : rerr(r, LLM_ERR_TYPE, line, "%s needs an attribute", name);
	const struct val *tn = arg(a, skip, NULL);
	if (tn && !need_str(r, tn, name, line))
		return false;
	struct args ta;
	memset(&ta, 0, sizeof ta);
	for (size_t i = skip + 1; i < a->npos && ta.npos < 8; i++)
		ta.pos[ta.npos++] = a->pos[i];
	char test[64];
	if (tn)
		snprintf(test, sizeof test, "%.*s", (int)tn->u.s.n, tn->u.s.p);
	struct vlist *l = list_new(r, items->n, line);
	if (!l)
		return false;
	l->n = 0;
	for (size_t i = 0; i < items->n; i++) {
		struct val x = items->v[i];
		if (attr) {
			char an_s[128];
			snprintf(an_s, sizeof an_s, "%.*s", (int)an->u.s.n, an->u.s.p);
			if (x.t == V_DICT) {
				struct val *f = dict_find_str(x.u.d, an_s, strlen(an_s));
				x = f ? *f : undef;
			} else {
				x = undef;
			}
		}
		bool res;
		if (tn) {
			if (!apply_test(r, test, &x, &ta, &res, line))
				return false;
		} else {
			res = truthy(&x);
		}
		if (res == keep)
			l->v[l->n++] = items->v[i];
	}
	*out = mklist(l);
	return true;
}

static bool apply_filter(struct render *r, const char *name, const struct val *v,
			 const struct args *a, struct val *out, int line)
{
	const struct val *x = arg(a, 0, NULL);
	if (!strcmp(name, "safe") || !strcmp(name, "e") || !strcmp(name, "escape")) {
		/* No autoescaping, as transformers renders: these pass text through. */
		if (name[0] != 's')
			return rerr(r, LLM_ERR_TYPE, line, "filter '%s' is not supported", name);
		*out = *v;
		return true;
	}
	if (!strcmp(name, "trim")) {
		struct val s;
		if (!to_str(r, v, &s, line))
			return false;
		const struct val *chars = arg(a, 0, "chars");
		if (chars && chars->t == V_NONE)
			chars = NULL;
		if (chars && !need_str(r, chars, "trim", line))
			return false;
		*out = strip(s, true, true, chars);
		return true;
	}
	if (!strcmp(name, "string")) {
		return to_str(r, v, out, line);
	}
	if (!strcmp(name, "lower") || !strcmp(name, "upper") || !strcmp(name, "capitalize") ||
	    !strcmp(name, "title")) {
		struct val s;
		return to_str(r, v, &s, line) && recase(r, s,
							name[0] == 'l'	 ? 'l'
							: name[0] == 'u' ? 'u'
									 : name[0],
							out, line);
	}
	if (!strcmp(name, "length") || !strcmp(name, "count")) {
		switch (v->t) {
		case V_STR:
			*out = mkint((int64_t)cp_count(v->u.s.p, v->u.s.n));
			return true;
		case V_LIST:
			*out = mkint((int64_t)v->u.l->n);
			return true;
		case V_DICT:
			*out = mkint((int64_t)v->u.d->n);
			return true;
		case V_UNDEF:
			*out = mkint(0);
			return true;
		default:
			return rerr(r, LLM_ERR_TYPE, line, "object of type %s has no length",
				    type_name(v));
		}
	}
	if (!strcmp(name, "default") || !strcmp(name, "d")) {
		const struct val *b = arg(a, 1, "boolean");
		bool use = v->t == V_UNDEF || (b && truthy(b) && !truthy(v));
		*out = use ? (x ? *x : mkstr("", 0)) : *v;
		return true;
	}
	if (!strcmp(name, "tojson")) {
		const struct val *ind = arg(a, 0, "indent"), *sk = arg(a, 4, "sort_keys");
		int indent = ind && ind->t == V_INT ? (int)ind->u.i : -1;
		struct llm_buf b;
		llm_buf_init(&b, 0);
		bool bad = false;
		if (v->t == V_UNDEF) {
			llm_buf_free(&b);
			return undefined_error(r, v, line);
		}
		enum llm_err e = put_json(&b, v, indent, 0, sk && truthy(sk), &bad);
		bool ok = !e && !bad && concat(r, b.data ? b.data : "", b.len, "", 0, out, line);
		llm_buf_free(&b);
		if (bad)
			return rerr(r, LLM_ERR_TYPE, line,
				    "tojson: a value is not JSON serializable");
		if (e)
			return rerr(r, e, line, "out of memory");
		return ok;
	}
	if (!strcmp(name, "first") || !strcmp(name, "last")) {
		struct vlist *l;
		if (!iterate(r, v, &l, line))
			return false;
		if (!l->n)
			*out = mkundef(r, line, "no %s item, sequence was empty", name);
		else
			*out = l->v[name[0] == 'f' ? 0 : l->n - 1];
		return !r->failed;
	}
	if (!strcmp(name, "list")) {
		struct vlist *l;
		if (!iterate(r, v, &l, line))
			return false;
		*out = mklist(l);
		return true;
	}
	if (!strcmp(name, "reverse")) {
		if (v->t == V_STR) {
			struct vlist *l;
			if (!iterate(r, v, &l, line))
				return false;
			char *s = ralloc(r, v->u.s.n + 1, line);
			if (!s)
				return false;
			size_t k = 0;
			for (size_t i = l->n; i-- > 0;) {
				memcpy(s + k, l->v[i].u.s.p, l->v[i].u.s.n);
				k += l->v[i].u.s.n;
			}
			*out = mkstr(s, k);
			return true;
		}
		struct vlist *l, *m;
		if (!iterate(r, v, &l, line) || !(m = list_new(r, l->n, line)))
			return false;
		for (size_t i = 0; i < l->n; i++)
			m->v[i] = l->v[l->n - 1 - i];
		*out = mklist(m);
		return true;
	}
	if (!strcmp(name, "items")) {
		if (v->t == V_UNDEF) {
			*out = mklist(list_new(r, 0, line));
			return !r->failed;
		}
		if (v->t != V_DICT)
			return rerr(r, LLM_ERR_TYPE, line, "items expects a mapping, not %s",
				    type_name(v));
		return dict_items(r, v->u.d, out, line);
	}
	if (!strcmp(name, "join")) {
		struct vlist *l;
		if (!iterate(r, v, &l, line))
			return false;
		struct val sep = mkstr("", 0);
		if (x && !to_str(r, x, &sep, line))
			return false;
		const struct val *attr = arg(a, 1, "attribute");
		struct llm_buf b;
		llm_buf_init(&b, 0);
		enum llm_err e = LLM_OK;
		bool ok = true;
		for (size_t i = 0; i < l->n && !e && ok; i++) {
			struct val item = l->v[i], s;
			if (attr && attr->t == V_STR && item.t == V_DICT) {
				struct val *f = dict_find(item.u.d, attr);
				item = f ? *f : undef;
			}
			ok = to_str(r, &item, &s, line);
			if (ok && i)
				e = llm_buf_append(&b, sep.u.s.p, sep.u.s.n);
			if (ok && !e)
				e = llm_buf_append(&b, s.u.s.p, s.u.s.n);
		}
		ok = ok && !e && concat(r, b.data ? b.data : "", b.len, "", 0, out, line);
		llm_buf_free(&b);
		if (e)
			return rerr(r, e, line, "out of memory");
		return ok;
	}
	if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr") || !strcmp(name, "select") ||
	    !strcmp(name, "reject"))
		return select_filter(r, name, v, a, out, line);
	if (!strcmp(name, "map")) {
		struct vlist *l, *m;
		if (!iterate(r, v, &l, line) || !(m = list_new(r, l->n, line)))
			return false;
		const struct val *attr = kwarg(a, "attribute");
		const struct val *fn = arg(a, 0, NULL);
		const struct val *dflt = kwarg(a, "default");
		if (!attr && (!fn || !need_str(r, fn, "map", line)))
			return r->failed ? false
					 : rerr(r, LLM_ERR_TYPE, line,
						"map needs a filter name or attribute=");
		char fname[64];
		if (!attr)
			snprintf(fname, sizeof fname, "%.*s", (int)fn->u.s.n, fn->u.s.p);
		struct args fa;
		memset(&fa, 0, sizeof fa);
		for (size_t i = 1; i < a->npos && !attr; i++)
			fa.pos[fa.npos++] = a->pos[i];
		for (size_t i = 0; i < l->n; i++) {
			if (attr) {
				struct val *f =
				    l->v[i].t == V_DICT ? dict_find(l->v[i].u.d, attr) : NULL;
				m->v[i] = f ? *f : dflt ? *dflt : undef;
			} else if (!apply_filter(r, fname, &l->v[i], &fa, &m->v[i], line)) {
				return false;
			}
		}
		*out = mklist(m);
		return true;
	}
	if (!strcmp(name, "int")) {
		const struct val *d = arg(a, 0, "default");
		if (v->t == V_INT || v->t == V_BOOL || v->t == V_FLOAT) {
			*out = mkint(inum(v));
			return true;
		}
		if (v->t == V_STR) {
			char buf[64];
			snprintf(buf, sizeof buf, "%.*s", (int)v->u.s.n, v->u.s.p);
			char *end;
			errno = 0;
			long long k = strtoll(buf, &end, 10);
			if (!errno && end != buf && !*end) {
				*out = mkint(k);
				return true;
			}
			double f = strtod(buf, &end);
			if (end != buf && !*end) {
				*out = mkint((int64_t)f);
				return true;
			}
		}
		*out = d ? *d : mkint(0);
		return true;
	}
	if (!strcmp(name, "float")) {
		const struct val *d = arg(a, 0, "default");
		if (is_num(v)) {
			*out = mkfloat(num(v));
			return true;
		}
		if (v->t == V_STR) {
			char buf[64], *end;
			snprintf(buf, sizeof buf, "%.*s", (int)v->u.s.n, v->u.s.p);
			double f = strtod(buf, &end);
			if (end != buf && !*end) {
				*out = mkfloat(f);
				return true;
			}
		}
		*out = d ? *d : mkfloat(0);
		return true;
	}
	if (!strcmp(name, "abs")) {
		if (!is_num(v))
			return rerr(r, LLM_ERR_TYPE, line, "abs expects a number");
		if (v->t == V_FLOAT)
			*out = mkfloat(fabs(v->u.f));
		else if (inum(v) == INT64_MIN)
			return rerr(r, LLM_ERR_RANGE, line, "integer overflow");
		else
			*out = mkint(inum(v) < 0 ? -inum(v) : inum(v));
		return true;
	}
	if (!strcmp(name, "round")) {
		const struct val *prec = arg(a, 0, "precision"), *meth = arg(a, 1, "method");
		if (!is_num(v))
			return rerr(r, LLM_ERR_TYPE, line, "round expects a number");
		double p = pow(10, prec && prec->t == V_INT ? (double)prec->u.i : 0),
		       f = num(v) * p;
		if (meth && str_eq(meth, "floor"))
			f = floor(f);
		else if (meth && str_eq(meth, "ceil"))
			f = ceil(f);
		else
			f = nearbyint(f); /* Python rounds half to even, as does the default mode */
		*out = mkfloat(f / p);
		return true;
	}
	if (!strcmp(name, "replace")) {
		struct val s;
		const struct val *y = arg(a, 1, NULL), *c = arg(a, 2, "count");
		if (!to_str(r, v, &s, line))
			return false;
		if (!x || !y || !need_str(r, x, name, line) || !need_str(r, y, name, line))
			return r->failed ? false
					 : rerr(r, LLM_ERR_TYPE, line, "replace needs two strings");
		return replace_str(r, &s, x, y, c && c->t == V_INT ? c->u.i : -1, out, line);
	}
	if (!strcmp(name, "unique") || !strcmp(name, "sort") || !strcmp(name, "min") ||
	    !strcmp(name, "max") || !strcmp(name, "sum")) {
		struct vlist *l, *m;
		if (!iterate(r, v, &l, line) || !(m = list_new(r, l->n, line)))
			return false;
		const struct val *attr = kwarg(a, "attribute");
		m->n = 0;
		for (size_t i = 0; i < l->n; i++) {
			bool dup = false;
			for (size_t k = 0; name[0] == 'u' && k < m->n && !dup; k++)
				dup = val_eq(&m->v[k], &l->v[i]);
			if (!dup)
				m->v[m->n++] = l->v[i];
		}
		if (!strcmp(name, "sum")) {
			struct val acc = mkint(0);
			for (size_t i = 0; i < m->n; i++) {
				struct val item = m->v[i];
				if (attr && item.t == V_DICT) {
					struct val *f = dict_find(item.u.d, attr);
					item = f ? *f : undef;
				}
				if (!arith(r, '+', &acc, &item, &acc, line))
					return false;
			}
			*out = acc;
			return true;
		}
		const struct val *rev = arg(a, 0, "reverse");
		/* Insertion sort keeps equal items in order, as Python's stable sort. */
		for (size_t i = 1; i < m->n; i++)
			for (size_t k = i; k > 0; k--) {
				struct val p = m->v[k - 1], q = m->v[k];
				if (attr && p.t == V_DICT && q.t == V_DICT) {
					struct val *fp = dict_find(p.u.d, attr),
						   *fq = dict_find(q.u.d, attr);
					p = fp ? *fp : undef;
					q = fq ? *fq : undef;
				}
				bool ok;
				int c = val_cmp(r, &p, &q, line, &ok);
				if (!ok)
					return false;
				if (name[0] == 's' && rev && truthy(rev) ? c >= 0 : c <= 0)
					break;
				struct val t = m->v[k];
				m->v[k] = m->v[k - 1];
				m->v[k - 1] = t;
			}
		if (!strcmp(name, "min") || !strcmp(name, "max")) {
			if (!m->n)
				*out = mkundef(r, line, "no %s item, sequence was empty", name);
			else
				*out = m->v[name[1] == 'i' ? 0 : m->n - 1];
			return !r->failed;
		}
		*out = mklist(m);
		return true;
	}
	if (!strcmp(name, "indent")) {
		struct val s;
		if (!to_str(r, v, &s, line))
			return false;
		const struct val *w = arg(a, 0, "width"), *first = arg(a, 1, "first"),
				 *blank = arg(a, 2, "blank");
		struct val pad = mkstr("    ", 4);
		if (w && w->t == V_STR)
			pad = *w;
		else if (w && w->t == V_INT) {
			char *sp = ralloc(r, (size_t)(w->u.i > 0 ? w->u.i : 0) + 1, line);
			if (!sp)
				return false;
			memset(sp, ' ', (size_t)(w->u.i > 0 ? w->u.i : 0));
			pad = mkstr(sp, (size_t)(w->u.i > 0 ? w->u.i : 0));
		}
		struct llm_buf b;
		llm_buf_init(&b, 0);
		enum llm_err e = LLM_OK;
		const char *p = s.u.s.p, *end = p + s.u.s.n;
		bool first_line = true;
		while (!e && p <= end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *le = nl ? nl : end;
			bool is_blank = le == p;
			if ((!first_line || (first && truthy(first))) &&
			    (!is_blank || (blank && truthy(blank))))
				e = llm_buf_append(&b, pad.u.s.p, pad.u.s.n);
			if (!e)
				e = llm_buf_append(&b, p, (size_t)(le - p) + (nl ? 1 : 0));
			first_line = false;
			if (!nl)
				break;
			p = nl + 1;
		}
		bool ok = !e && concat(r, b.data ? b.data : "", b.len, "", 0, out, line);
		llm_buf_free(&b);
		if (e)
			return rerr(r, e, line, "out of memory");
		return ok;
	}
	if (!strcmp(name, "wordcount")) {
		struct val s, l;
		if (!to_str(r, v, &s, line) || !split_str(r, &s, NULL, -1, &l, line))
			return false;
		*out = mkint((int64_t)l.u.l->n);
		return true;
	}
	return rerr(r, LLM_ERR_TYPE, line, "unknown filter '%s'", name);
}

/* ---- statements ---------------------------------------------------------------------- */

static bool emit(struct render *r, const char *p, size_t n, int line)
{
	if (!n)
		return true;
	size_t start = r->out->len;
	enum llm_err e = llm_buf_append(r->out, p, n);
	if (e)
		return e == LLM_ERR_TOO_BIG
			   ? rerr(r, e, line, "the rendered text is over %zu bytes", r->out->max)
			   : rerr(r, e, line, "out of memory");
	if (r->gen_depth && !r->capture_depth) {
		size_t s = start - r->base, end = r->out->len - r->base;
		if (r->nspans && r->spans[r->nspans - 1].end == s) {
			r->spans[r->nspans - 1].end = end;
			return true;
		}
		if (r->nspans == r->capspans) {
			size_t cap = r->capspans ? r->capspans * 2 : 8;
			struct llm_jinja_span *v = realloc(r->spans, cap * sizeof *v);
			if (!v)
				return rerr(r, LLM_ERR_NOMEM, line, "out of memory");
			r->spans = v;
			r->capspans = cap;
		}
		r->spans[r->nspans++] = (struct llm_jinja_span){s, end};
	}
	return true;
}

static bool push_frame(struct render *r, int line)
{
	if (r->nframes == r->capframes) {
		size_t cap = r->capframes * 2;
		struct frame *f = realloc(r->frames, cap * sizeof *f);
		if (!f)
			return rerr(r, LLM_ERR_NOMEM, line, "out of memory");
		r->frames = f;
		r->capframes = cap;
	}
	struct vdict *d = dict_new(r, 0, line);
	if (!d)
		return false;
	r->frames[r->nframes++].vars = d;
	return true;
}

static bool assign(struct render *r, const struct node *target, const struct val *v, int line)
{
	struct vdict *scope = r->frames[r->nframes - 1].vars;
	if (target->k == E_NAME)
		return dict_set_str(r, scope, target->name, *v, line);
	if (target->k == E_ATTR) {
		struct val obj;
		if (!lookup(r, target->a->name, &obj, line))
			return false;
		if (obj.t != V_DICT || !obj.u.d->ns)
			return rerr(r, LLM_ERR_TYPE, line,
				    "cannot assign attribute '%s' of '%s': not a namespace",
				    target->name, target->a->name);
		return dict_set_str(r, obj.u.d, target->name, *v, line);
	}
	/* a, b = pair */
	struct vlist *items;
	if (!iterate(r, v, &items, line))
		return false;
	if (items->n != target->args.n)
		return rerr(r, LLM_ERR_TYPE, line, "cannot unpack %zu values into %zu names",
			    items->n, target->args.n);
	for (size_t i = 0; i < items->n; i++)
		if (!dict_set_str(r, scope, target->args.v[i]->name, items->v[i], line))
			return false;
	return true;
}

static bool exec_for(struct render *r, const struct node *n)
{
	struct val seq;
	if (!eval(r, n->a, &seq))
		return false;
	struct vlist *items;
	if (!iterate(r, &seq, &items, n->line))
		return false;
	if (n->c) {
		/* {% for x in xs if cond %}: the loop variables count only the kept items. */
		struct vlist *kept = list_new(r, items->n, n->line);
		if (!kept || !push_frame(r, n->line))
			return false;
		kept->n = 0;
		for (size_t i = 0; i < items->n; i++) {
			struct val c;
			if (!assign(r, n->b, &items->v[i], n->line) || !eval(r, n->c, &c))
				return false;
			if (truthy(&c))
				kept->v[kept->n++] = items->v[i];
		}
		r->nframes--;
		items = kept;
	}
	if (!items->n) {
		if (!push_frame(r, n->line))
			return false;
		bool ok = exec_body(r, &n->alt);
		r->nframes--;
		return ok;
	}
	for (size_t i = 0; i < items->n; i++) {
		if (!push_frame(r, n->line))
			return false;
		struct vdict *loop = dict_new(r, 10, n->line);
		if (!loop)
			return false;
		int64_t len = (int64_t)items->n, k = (int64_t)i;
		bool ok = dict_set_str(r, loop, "index", mkint(k + 1), n->line) &&
			  dict_set_str(r, loop, "index0", mkint(k), n->line) &&
			  dict_set_str(r, loop, "revindex", mkint(len - k), n->line) &&
			  dict_set_str(r, loop, "revindex0", mkint(len - k - 1), n->line) &&
			  dict_set_str(r, loop, "first", mkbool(i == 0), n->line) &&
			  dict_set_str(r, loop, "last", mkbool(i + 1 == items->n), n->line) &&
			  dict_set_str(r, loop, "length", mkint(len), n->line) &&
			  dict_set_str(r, loop, "previtem", i ? items->v[i - 1] : undef, n->line) &&
			  dict_set_str(r, loop, "nextitem",
				       i + 1 < items->n ? items->v[i + 1] : undef, n->line) &&
			  dict_set_str(r, r->frames[r->nframes - 1].vars, "loop", mkdict(loop),
				       n->line) &&
			  assign(r, n->b, &items->v[i], n->line) && exec_body(r, &n->body);
		r->nframes--;
		if (!ok)
			return false;
		if (r->ctl == 1) {
			r->ctl = 0;
			break;
		}
		r->ctl = 0;
	}
	return true;
}

static bool exec_node(struct render *r, const struct node *n)
{
	switch (n->k) {
	case N_TEXT:
		return emit(r, n->lit.u.s.p, n->lit.u.s.n, n->line);
	case N_OUT: {
		struct val v;
		if (!eval(r, n->a, &v))
			return false;
		if (v.t == V_STR)
			return emit(r, v.u.s.p, v.u.s.n, n->line);
		struct val s;
		return to_str(r, &v, &s, n->line) && emit(r, s.u.s.p, s.u.s.n, n->line);
	}
	case N_IF: {
		struct val c;
		if (!eval(r, n->a, &c))
			return false;
		return exec_body(r, truthy(&c) ? &n->body : &n->alt);
	}
	case N_FOR:
		return exec_for(r, n);
	case N_SET: {
		struct val v;
		return eval(r, n->a, &v) && assign(r, n->b, &v, n->line);
	}
	case N_SETBLOCK: {
		struct llm_buf *saved = r->out, buf;
		llm_buf_init(&buf, saved->max);
		r->out = &buf;
		r->capture_depth++;
		bool ok = exec_body(r, &n->body);
		r->capture_depth--;
		r->out = saved;
		struct val v;
		ok = ok && concat(r, buf.data ? buf.data : "", buf.len, "", 0, &v, n->line) &&
		     assign(r, n->b, &v, n->line);
		llm_buf_free(&buf);
		return ok;
	}
	case N_MACRO: {
		struct val m = {V_MACRO, {.macro = n}, NULL};
		return dict_set_str(r, r->frames[r->nframes - 1].vars, n->name, m, n->line);
	}
	case N_BREAK:
		r->ctl = 1;
		return true;
	case N_CONTINUE:
		r->ctl = 2;
		return true;
	case N_GEN: {
		r->gen_depth++;
		bool ok = exec_body(r, &n->body);
		r->gen_depth--;
		return ok;
	}
	default:
		return rerr(r, LLM_ERR_TYPE, n->line, "not a statement");
	}
}

static bool exec_body(struct render *r, const struct nlist *body)
{
	for (size_t i = 0; i < body->n; i++) {
		if (!exec_node(r, body->v[i]))
			return false;
		if (r->ctl)
			return true;
	}
	return true;
}

enum llm_err llm_jinja_render(const struct llm_jinja *t, json_t *vars, struct llm_buf *out,
			      struct llm_jinja_span **spans, size_t *nspans, struct llm_diag *diag)
{
	if (spans) {
		*spans = NULL;
		*nspans = 0;
	}
	struct render r = {0};
	r.t = t;
	r.out = out;
	r.base = out->len;
	r.diag = diag;
	/* Values a template builds are bounded too: a few times the output's own ceiling. */
	r.arena.max = (out->max ? out->max : (size_t)1 << 30) * 4 + ((size_t)64 << 20);
	r.capframes = 16;
	r.frames = malloc(r.capframes * sizeof *r.frames);
	enum llm_err e = LLM_OK;
	struct val g;
	if (!r.frames) {
		e = llm_diag_set(diag, LLM_ERR_NOMEM, t->name, 0, "out of memory");
		goto done;
	}
	if (!vars || !json_is_object(vars) || !from_json(&r, vars, &g)) {
		e = llm_diag_set(diag, vars && json_is_object(vars) ? LLM_ERR_NOMEM : LLM_ERR_TYPE,
				 t->name, 0, "the template variables must be a JSON object");
		goto done;
	}
	r.globals = g.u.d;
	if (!push_frame(&r, 0) || !exec_body(&r, &t->body))
		e = r.code ? r.code : LLM_ERR_TYPE;
done:
	if (e) {
		out->len = r.base;
		if (out->data)
			out->data[out->len] = '\0';
		free(r.spans);
	} else if (spans) {
		*spans = r.spans;
		*nspans = r.nspans;
	} else {
		free(r.spans);
	}
	free(r.frames);
	arena_free(&r.arena);
	return e;
}
