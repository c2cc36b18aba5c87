/* The --where language (see where.h): a recursive-descent parser to a small tree, and an
 * evaluator over jansson values. */
#include "config.h"

#include "monitor/where.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

enum node_kind { N_OR, N_AND, N_NOT, N_EXISTS, N_CMP };
enum op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };
enum lit_kind { L_NUMBER, L_STRING, L_TRUE, L_FALSE, L_NULL };

struct node {
	enum node_kind kind;
	struct node *a, *b; /* operands of or, and, not */
	/* exists and compare: the path, as NUL-separated names */
	char **path;
	size_t npath;
	enum op op;
	enum lit_kind lit;
	double num;
	char *str; /* the string, or the text of a number or bare word */
	bool bare; /* the literal was a number or a bare word: a string field compares its text */
};

struct llm_mon_where {
	struct node *root;
};

struct parser {
	const char *s;
	size_t i;
	struct llm_diag *diag;
	bool failed;
};

static void node_free(struct node *n)
{
	if (!n)
		return;
	node_free(n->a);
	node_free(n->b);
	for (size_t i = 0; i < n->npath; i++)
		free(n->path[i]);
	free(n->path);
	free(n->str);
	free(n);
}

void llm_mon_where_free(struct llm_mon_where *w)
{
	if (!w)
		return;
	node_free(w->root);
	free(w);
}

static struct node *fail(struct parser *p, size_t at, const char *what)
{
	if (!p->failed) {
		p->failed = true;
		const char *here = p->s + at;
		if (*here)
			llm_diag_set(p->diag, LLM_ERR_USAGE, NULL, 0, "column %zu: %s, at '%.20s'",
				     at + 1, what, here);
		else
			llm_diag_set(p->diag, LLM_ERR_USAGE, NULL, 0, "column %zu: %s, at the end",
				     at + 1, what);
	}
	return NULL;
}

static struct node *nomem(struct parser *p)
{
	if (!p->failed) {
		p->failed = true;
		llm_diag_set(p->diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	return NULL;
}

static void skip_ws(struct parser *p)
{
	while (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')
		p->i++;
}

static bool is_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

static bool is_bare_char(char c)
{
	return is_name_char(c) || c == '.' || c == ':' || c == '/' || c == '@' || c == '+';
}

/* The keyword kw is next, as a whole word. */
static bool keyword(struct parser *p, const char *kw)
{
	skip_ws(p);
	size_t n = strlen(kw);
	if (strncmp(p->s + p->i, kw, n) || is_name_char(p->s[p->i + n]))
		return false;
	p->i += n;
	return true;
}

static bool symbol(struct parser *p, const char *sym)
{
	skip_ws(p);
	size_t n = strlen(sym);
	if (strncmp(p->s + p->i, sym, n))
		return false;
	p->i += n;
	return true;
}

static struct node *new_node(struct parser *p, enum node_kind k)
{
	struct node *n = calloc(1, sizeof *n);
	if (!n)
		return nomem(p);
	n->kind = k;
	return n;
}

static bool parse_path(struct parser *p, struct node *n)
{
	skip_ws(p);
	if (!is_name_start(p->s[p->i])) {
		fail(p, p->i, "expected a field name");
		return false;
	}
	for (;;) {
		size_t start = p->i;
		if (!is_name_start(p->s[p->i])) {
			fail(p, p->i, "expected a field name after '.'");
			return false;
		}
		while (is_name_char(p->s[p->i]))
			p->i++;
		char **v = realloc(n->path, (n->npath + 1) * sizeof *v);
		if (!v || !(v[n->npath] = strndup(p->s + start, p->i - start))) {
			if (v)
				n->path = v;
			nomem(p);
			return false;
		}
		n->path = v;
		n->npath++;
		if (p->s[p->i] != '.')
			return true;
		p->i++;
	}
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

static bool put_utf8(struct llm_buf *b, unsigned cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return llm_buf_append(b, u, n) == LLM_OK;
}

/* A quoted string at p->i (the quote is " or '). */
static bool parse_string(struct parser *p, struct node *n)
{
	char q = p->s[p->i];
	size_t open = p->i++;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	for (;;) {
		char c = p->s[p->i];
		if (!c) {
			llm_buf_free(&b);
			fail(p, open, "a string that does not end");
			return false;
		}
		p->i++;
		if (c == q)
			break;
		if (c != '\\') {
			if (llm_buf_putc(&b, c))
				goto oom;
			continue;
		}
		char e = p->s[p->i++];
		const char *from = "\"\\/'bfnrt", *to = "\"\\/'\b\f\n\r\t";
		const char *k = e ? strchr(from, e) : NULL;
		if (k) {
			if (llm_buf_putc(&b, to[k - from]))
				goto oom;
			continue;
		}
		if (e != 'u') {
			llm_buf_free(&b);
			fail(p, p->i - 2, "an unknown escape in a string");
			return false;
		}
		unsigned cp = 0;
		for (int j = 0; j < 4; j++) {
			int h = hexval(p->s[p->i]);
			if (h < 0) {
				llm_buf_free(&b);
				fail(p, p->i, "expected four hex digits after \\u");
				return false;
			}
			cp = cp * 16 + (unsigned)h;
			p->i++;
		}
		if (cp >= 0xd800 && cp < 0xdc00 && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
			unsigned lo = 0;
			int ok = 1;
			for (int j = 0; j < 4 && ok; j++) {
				int h = hexval(p->s[p->i + 2 + j]);
				ok = h >= 0;
				lo = lo * 16 + (unsigned)(h < 0 ? 0 : h);
			}
			if (ok && lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p->i += 6;
			}
		}
		if (cp >= 0xd800 && cp < 0xe000) {
			llm_buf_free(&b);
			fail(p, p->i - 6, "a lone surrogate in a string");
			return false;
		}
		if (!put_utf8(&b, cp))
			goto oom;
	}
	n->lit = L_STRING;
	n->str = b.data ? b.data : strdup("");
	if (!n->str)
		goto oom;
	return true;
oom:
	llm_buf_free(&b);
	nomem(p);
	return false;
}

static bool parse_value(struct parser *p, struct node *n)
{
	skip_ws(p);
	char c = p->s[p->i];
	if (c == '"' || c == '\'')
		return parse_string(p, n);
	size_t start = p->i;
	while (is_bare_char(p->s[p->i]) || (p->i == start && p->s[p->i] == '-'))
		p->i++;
	if (p->i == start) {
		fail(p, p->i, "expected a value (a number, a \"string\" or a word)");
		return false;
	}
	n->str = strndup(p->s + start, p->i - start);
	if (!n->str) {
		nomem(p);
		return false;
	}
	n->bare = true;
	if (!strcmp(n->str, "true"))
		n->lit = L_TRUE;
	else if (!strcmp(n->str, "false"))
		n->lit = L_FALSE;
	else if (!strcmp(n->str, "null"))
		n->lit = L_NULL;
	else {
		char *end;
		errno = 0;
		double v = strtod(n->str, &end);
		bool number = !*end && end != n->str && !errno && isfinite(v) &&
			      strchr("+-.0123456789", n->str[0]);
		n->lit = number ? L_NUMBER : L_STRING;
		n->num = v;
	}
	return true;
}

static struct node *parse_or(struct parser *p);

static struct node *parse_unary(struct parser *p)
{
	skip_ws(p);
	if (keyword(p, "not") || symbol(p, "!")) {
		/* "!" is also the start of "!=": only a path can come before that. */
		struct node *n = new_node(p, N_NOT);
		if (!n)
			return NULL;
		if (!(n->a = parse_unary(p))) {
			node_free(n);
			return NULL;
		}
		return n;
	}
	if (symbol(p, "(")) {
		size_t open = p->i - 1;
		struct node *n = parse_or(p);
		if (!n)
			return NULL;
		if (!symbol(p, ")")) {
			node_free(n);
			char what[80];
			snprintf(what, sizeof what, "expected ')' to close the '(' of column %zu",
				 open + 1);
			return fail(p, p->i, what);
		}
		return n;
	}
	size_t at = p->i;
	if (keyword(p, "exists")) {
		if (!symbol(p, "("))
			return fail(p, p->i, "expected '(' after exists");
		struct node *n = new_node(p, N_EXISTS);
		if (!n)
			return NULL;
		if (!parse_path(p, n) || !symbol(p, ")")) {
			node_free(n);
			return fail(p, p->i, "expected ')' after the field name");
		}
		return n;
	}
	p->i = at;
	struct node *n = new_node(p, N_CMP);
	if (!n)
		return NULL;
	if (!parse_path(p, n)) {
		node_free(n);
		return NULL;
	}
	skip_ws(p);
	static const struct {
		const char *s;
		enum op op;
	} ops[] = {{"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE},
		   {"=", OP_EQ},  {"<", OP_LT},	 {">", OP_GT}};
	size_t k;
	for (k = 0; k < sizeof ops / sizeof ops[0]; k++)
		if (symbol(p, ops[k].s))
			break;
	if (k == sizeof ops / sizeof ops[0]) {
		node_free(n);
		return fail(p, p->i,
			    "expected a comparison (== != < <= > >=) after the field name");
	}
	n->op = ops[k].op;
	if (!parse_value(p, n)) {
		node_free(n);
		return NULL;
	}
	return n;
}

static struct node *parse_and(struct parser *p)
{
	struct node *left = parse_unary(p);
	while (left && (keyword(p, "and") || symbol(p, "&&"))) {
		struct node *n = new_node(p, N_AND);
		if (!n || !(n->b = parse_unary(p))) {
			node_free(n);
			node_free(left);
			return NULL;
		}
		n->a = left;
		left = n;
	}
	return left;
}

static struct node *parse_or(struct parser *p)
{
	struct node *left = parse_and(p);
	while (left && (keyword(p, "or") || symbol(p, "||"))) {
		struct node *n = new_node(p, N_OR);
		if (!n || !(n->b = parse_and(p))) {
			node_free(n);
			node_free(left);
			return NULL;
		}
		n->a = left;
		left = n;
	}
	return left;
}

enum llm_err llm_mon_where_compile(struct llm_mon_where **out, const char *expr,
				   struct llm_diag *diag)
{
	*out = NULL;
	struct parser p = {expr, 0, diag, false};
	skip_ws(&p);
	if (!expr[p.i]) {
		fail(&p, p.i, "expected an expression");
		return LLM_ERR_USAGE;
	}
	struct node *root = parse_or(&p);
	if (root) {
		skip_ws(&p);
		if (expr[p.i]) {
			node_free(root);
			root = NULL;
			fail(&p, p.i, "expected 'and', 'or' or the end");
		}
	}
	if (!root)
		return p.failed && diag ? diag->code : LLM_ERR_USAGE;
	struct llm_mon_where *w = malloc(sizeof *w);
	if (!w) {
		node_free(root);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	w->root = root;
	*out = w;
	return LLM_OK;
}

/* --- evaluation ------------------------------------------------------------------------- */

static bool cmp_num(enum op op, double a, double b)
{
	switch (op) {
	case OP_EQ:
		return a == b;
	case OP_NE:
		return a != b;
	case OP_LT:
		return a < b;
	case OP_LE:
		return a <= b;
	case OP_GT:
		return a > b;
	case OP_GE:
		return a >= b;
	}
	return false;
}

static bool cmp_value(const struct node *n, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_INTEGER:
	case JSON_REAL:
		return n->lit == L_NUMBER && cmp_num(n->op, json_number_value(v), n->num);
	case JSON_STRING: {
		if (n->lit != L_STRING && !(n->lit == L_NUMBER && n->bare))
			return false;
		const char *s = json_string_value(v);
		size_t len = json_string_length(v), k = strlen(n->str);
		int c = memcmp(s, n->str, len < k ? len : k);
		if (!c)
			c = len < k ? -1 : len > k;
		return cmp_num(n->op, c, 0);
	}
	case JSON_TRUE:
		return (n->op == OP_EQ && n->lit == L_TRUE) ||
		       (n->op == OP_NE && n->lit == L_FALSE);
	case JSON_FALSE:
		return (n->op == OP_EQ && n->lit == L_FALSE) ||
		       (n->op == OP_NE && n->lit == L_TRUE);
	case JSON_NULL:
	case JSON_OBJECT:
	case JSON_ARRAY:
		return false;
	}
	return false;
}

/* Walk path[k..] from v; true when test holds for any value reached. */
static bool walk(const struct node *n, size_t k, const json_t *v)
{
	if (json_is_array(v)) {
		size_t i;
		const json_t *e;
		json_array_foreach(v, i, e) if (walk(n, k, e)) return true;
		return false;
	}
	if (k == n->npath) {
		if (n->kind == N_EXISTS)
			return !json_is_null(v);
		return cmp_value(n, v);
	}
	if (!json_is_object(v))
		return false;
	const json_t *m = json_object_get(v, n->path[k]);
	return m && walk(n, k + 1, m);
}

static bool eval(const struct node *n, const json_t *rec)
{
	switch (n->kind) {
	case N_OR:
		return eval(n->a, rec) || eval(n->b, rec);
	case N_AND:
		return eval(n->a, rec) && eval(n->b, rec);
	case N_NOT:
		return !eval(n->a, rec);
	case N_EXISTS:
	case N_CMP:
		return walk(n, 0, rec);
	}
	return false;
}

bool llm_mon_where_match(const struct llm_mon_where *w, const json_t *rec)
{
	return json_is_object(rec) && eval(w->root, rec);
}

static bool reads(const struct node *n, const char *name)
{
	if (!n)
		return false;
	if ((n->kind == N_CMP || n->kind == N_EXISTS) && n->npath && !strcmp(n->path[0], name))
		return true;
	return reads(n->a, name) || reads(n->b, name);
}

bool llm_mon_where_reads(const struct llm_mon_where *w, const char *name)
{
	return reads(w->root, name);
}
