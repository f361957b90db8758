/* The table engine (directive.h): key lookup, key paths, "did you mean",
 * required keys and the walk back for -T. What a value means is its
 * type's business (conf.c, options.c). */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <dgramd/rc.h>

#include "directive.h"

int dg_directive_fail(struct dg_directive_ctx *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->style == DG_DIRECTIVE_OPTIONS)
		snprintf(c->err, c->errlen, "%s%s%s: %s", c->where, c->plen ? "." : "", c->path, msg);
	else
		snprintf(c->err, c->errlen, "%s: %s: %s", c->where, c->plen ? c->path : "(top level)", msg);
	return DG_EINVAL;
}

size_t dg_directive_push_key(struct dg_directive_ctx *c, const char *key)
{
	size_t saved = c->plen;
	int n = snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "%s%s",
	                 c->plen ? "." : "", key);
	if (n > 0)
		c->plen = strnlen(c->path, sizeof(c->path) - 1);
	return saved;
}

size_t dg_directive_push_index(struct dg_directive_ctx *c, size_t i)
{
	size_t saved = c->plen;
	snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "[%zu]", i);
	c->plen = strnlen(c->path, sizeof(c->path) - 1);
	return saved;
}

void dg_directive_pop(struct dg_directive_ctx *c, size_t saved)
{
	c->plen = saved;
	c->path[saved] = '\0';
}

unsigned dg_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned diag = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned up = row[j];
			unsigned best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const char *dg_directive_quote(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	for (; *s && n + 8 < len && n < 64; s++) {
		unsigned char ch = (unsigned char)*s;
		n += (size_t)snprintf(buf + n, len - n, isprint(ch) && ch != '\\' ? "%c" : "\\x%02x", ch);
	}
	snprintf(buf + n, len - n, "%s", *s ? "..." : "");
	return buf;
}

/* A plugin's unknown key: quoted, the first near key, or the known ones. */
static int unknown_option(struct dg_directive_ctx *c, const char *key,
                          const struct dg_directive *table)
{
	char known[512], q[80];
	size_t n = 0;

	known[0] = '\0';
	dg_directive_push_key(c, dg_directive_quote(key, q, sizeof(q)));
	for (const struct dg_directive *d = table; d->key; d++) {
		if (dg_edit_distance(key, d->key) <= 2)
			return dg_directive_fail(c, "unknown key (did you mean '%s'?)", d->key);
		if (n < sizeof(known))
			n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", n ? ", " : "", d->key);
	}
	return dg_directive_fail(c, "unknown key (known: %s)", table->key ? known : "none");
}

/* A config's unknown key: as given, the last near key. */
static int unknown_directive(struct dg_directive_ctx *c, const char *key,
                             const struct dg_directive *table)
{
	const struct dg_directive *near = NULL;

	dg_directive_push_key(c, key);
	for (const struct dg_directive *d = table; d->key; d++)
		if (dg_edit_distance(key, d->key) <= 2)
			near = d;
	if (near)
		return dg_directive_fail(c, "unknown key (did you mean '%s'?)", near->key);
	return dg_directive_fail(c, "unknown key");
}

int dg_directive_apply(struct dg_directive_ctx *c, json_t *obj, void *target,
                       const struct dg_directive *table)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return dg_directive_fail(c, "expected an object");
	json_object_foreach(obj, key, v) {
		const struct dg_directive *d = table;
		while (d->key && strcmp(d->key, key))
			d++;
		if (!d->key)
			return c->style == DG_DIRECTIVE_OPTIONS ? unknown_option(c, key, table)
			                                        : unknown_directive(c, key, table);
		size_t saved = dg_directive_push_key(c, key);
		int rc = d->type->parse(c, v, target, d);
		if (rc)
			return rc;
		dg_directive_pop(c, saved);
	}
	for (const struct dg_directive *d = table; d->key; d++) {
		if (d->required && !json_object_get(obj, d->key)) {
			dg_directive_push_key(c, d->key);
			return dg_directive_fail(c, "missing (required)");
		}
	}
	return DG_OK;
}

json_t *dg_directive_dump(struct dg_directive_ctx *c, const void *obj,
                          const struct dg_directive *table)
{
	json_t *o = json_object();

	for (const struct dg_directive *d = table; o && d->key; d++) {
		json_t *v = d->type->dump(c, obj, d);
		if (json_is_null(v)) {
			json_decref(v);
			continue;
		}
		if (!v || json_object_set_new(o, d->key, v)) {
			json_decref(o);
			return NULL; /* c->err says why */
		}
	}
	return o;
}

static int parse_object(struct dg_directive_ctx *c, json_t *v, void *obj,
                        const struct dg_directive *d)
{
	return dg_directive_apply(c, v, dg_directive_field(obj, d), d->arg);
}

static json_t *dump_object(struct dg_directive_ctx *c, const void *obj,
                           const struct dg_directive *d)
{
	return dg_directive_dump(c, dg_directive_cfield(obj, d), d->arg);
}

const struct dg_directive_type dg_directive_object = { parse_object, dump_object };
