/* Plugin option tables: one row per option type says how a value is
 * checked, stored and shown; the table check is a loop over the plugin's
 * table, and a config is parsed and shown by the directive engine
 * (directive.h) over that table in its form, one row per option. */
#include "config.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "directive.h"
#include "jsonload.h"
#include "options.h"

struct dg_options {
	json_t *hold;   /* array: the config, then each parsed default; strings
	                 * and JSON values in data point into these */
	struct dg_directive *rows; /* the table the config was parsed by */
	size_t size;    /* of data */
	max_align_t data[];
};

/* A value's problem into msg. */
typedef int (*check_fn)(const struct dg_option *o, const json_t *v, char *msg, size_t len);
/* Store a checked value (borrowed: a string or JSON points into v). */
typedef void (*store_fn)(const struct dg_option *o, const json_t *v, void *field);
typedef json_t *(*show_fn)(const struct dg_option *o, const void *field);

struct opt_type {
	const char *name; /* in table errors */
	size_t size, align;
	check_fn check;
	store_fn store;
	show_fn show;
};

__attribute__((format(printf, 3, 4)))
static int bad(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return DG_EINVAL;
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real number";
	case JSON_TRUE: return "true";
	case JSON_FALSE: return "false";
	default: return "null";
	}
}

/* ---- per type ----------------------------------------------------------- */

static int check_bool(const struct dg_option *o, const json_t *v, char *msg, size_t len)
{
	(void)o;
	return json_is_boolean(v) ? DG_OK : bad(msg, len, "expected true or false, got %s", json_kind(v));
}

static void store_bool(const struct dg_option *o, const json_t *v, void *field)
{
	(void)o;
	*(bool *)field = json_is_true(v);
}

static json_t *show_bool(const struct dg_option *o, const void *field)
{
	(void)o;
	return json_boolean(*(const bool *)field);
}

static bool ranged(const struct dg_option *o)
{
	return o->min || o->max;
}

static int check_int(const struct dg_option *o, const json_t *v, char *msg, size_t len)
{
	if (!json_is_integer(v)) {
		if (ranged(o))
			return bad(msg, len, "expected an integer (%lld .. %lld), got %s",
			           (long long)o->min, (long long)o->max, json_kind(v));
		return bad(msg, len, "expected an integer, got %s", json_kind(v));
	}
	json_int_t i = json_integer_value(v);
	if (ranged(o) && (i < o->min || i > o->max))
		return bad(msg, len, "must be %lld .. %lld (got %lld)", (long long)o->min,
		           (long long)o->max, (long long)i);
	return DG_OK;
}

static void store_int(const struct dg_option *o, const json_t *v, void *field)
{
	(void)o;
	*(int64_t *)field = json_integer_value(v);
}

static json_t *show_int(const struct dg_option *o, const void *field)
{
	(void)o;
	return json_integer(*(const int64_t *)field);
}

static int check_string(const struct dg_option *o, const json_t *v, char *msg, size_t len)
{
	if (!json_is_string(v))
		return bad(msg, len, "expected a string, got %s", json_kind(v));
	size_t n = json_string_length(v);
	if (strlen(json_string_value(v)) != n)
		return bad(msg, len, "NUL byte in string");
	if (ranged(o) && ((int64_t)n < o->min || (int64_t)n > o->max))
		return bad(msg, len, "must be %lld .. %lld bytes long (got %zu)", (long long)o->min,
		           (long long)o->max, n);
	return DG_OK;
}

/* DG_OPT_STRING and DG_OPT_JSON: a pointer into the held JSON. */
static void store_borrowed(const struct dg_option *o, const json_t *v, void *field)
{
	if (o->type == DG_OPT_STRING)
		*(const char **)field = json_string_value(v);
	else
		*(const json_t **)field = v;
}

static json_t *show_string(const struct dg_option *o, const void *field)
{
	const char *s = *(const char *const *)field;
	(void)o;
	return s ? json_string(s) : json_null();
}

/* The index of s among o->choices ("a|b|c"), or -1. */
static int choice_index(const struct dg_option *o, const char *s)
{
	size_t n = strlen(s);
	int i = 0;

	for (const char *c = o->choices; c; i++) {
		const char *bar = strchr(c, '|');
		size_t clen = bar ? (size_t)(bar - c) : strlen(c);
		if (clen == n && !memcmp(c, s, n))
			return i;
		c = bar ? bar + 1 : NULL;
	}
	return -1;
}

/* Choice i into buf (empty if there is none). */
static const char *choice_at(const struct dg_option *o, int i, char *buf, size_t len)
{
	const char *c = o->choices;

	for (; c && i > 0; i--)
		c = strchr(c, '|') ? strchr(c, '|') + 1 : NULL;
	size_t clen = !c ? 0 : strchr(c, '|') ? (size_t)(strchr(c, '|') - c) : strlen(c);
	snprintf(buf, len, "%.*s", (int)(clen < len ? clen : len - 1), c ? c : "");
	return buf;
}

/* "\"a\", \"b\" or \"c\"", and the nearest choice to s (if close) into near. */
static void choices_text(const struct dg_option *o, const char *s, char *buf, size_t len,
                         char *near, size_t nlen)
{
	char c[64];
	size_t n = 0;
	int count = 0;

	while (choice_at(o, count, c, sizeof(c))[0])
		count++;
	near[0] = '\0';
	for (int i = 0; i < count && n < len; i++) {
		choice_at(o, i, c, sizeof(c));
		n += (size_t)snprintf(buf + n, len - n, "%s\"%s\"",
		                      !i ? "" : i + 1 < count ? ", " : " or ", c);
		unsigned d = s ? dg_edit_distance(s, c) : 99;
		if (!near[0] && d <= 2 && d < strlen(c)) /* "c" is not a typo of "a" */
			snprintf(near, nlen, "%s", c);
	}
}

static int check_enum(const struct dg_option *o, const json_t *v, char *msg, size_t len)
{
	char list[256], near[64], q[80];
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;

	if (s && choice_index(o, s) >= 0)
		return DG_OK;
	choices_text(o, s, list, sizeof(list), near, sizeof(near));
	if (!s)
		return bad(msg, len, "expected %s, got %s", list, json_kind(v));
	return bad(msg, len, "must be %s (got \"%s\"%s%s%s)", list, dg_directive_quote(s, q, sizeof(q)),
	           near[0] ? "; did you mean \"" : "", near, near[0] ? "\"?" : "");
}

static void store_enum(const struct dg_option *o, const json_t *v, void *field)
{
	*(int *)field = choice_index(o, json_string_value(v));
}

static json_t *show_enum(const struct dg_option *o, const void *field)
{
	char c[64];
	return json_string(choice_at(o, *(const int *)field, c, sizeof(c)));
}

static int check_addr(const struct dg_option *o, const json_t *v, char *msg, size_t len)
{
	struct dg_addr a;
	char q[80];
	(void)o;

	if (!json_is_string(v))
		return bad(msg, len, "expected a numeric \"a.b.c.d:port\" or \"[ipv6]:port\", got %s",
		           json_kind(v));
	if (!dg_addr_parse(json_string_value(v), &a))
		return bad(msg, len, "expected a numeric \"a.b.c.d:port\" or \"[ipv6]:port\" (got \"%s\")",
		           dg_directive_quote(json_string_value(v), q, sizeof(q)));
	return DG_OK;
}

static void store_addr(const struct dg_option *o, const json_t *v, void *field)
{
	struct dg_option_addr *out = field;
	struct dg_addr a;
	(void)o;

	if (dg_addr_parse(json_string_value(v), &a)) { /* checked before */
		out->addr = a.ss;
		out->len = a.len;
	}
}

static json_t *show_addr(const struct dg_option *o, const void *field)
{
	const struct dg_option_addr *a = field;
	char buf[64];
	(void)o;

	if (!a->len)
		return json_null();
	return json_string(dg_addr_format((const struct sockaddr *)&a->addr, buf, sizeof(buf)));
}

static int check_json(const struct dg_option *o, const json_t *v, char *msg, size_t len)
{
	(void)o, (void)v, (void)msg, (void)len;
	return DG_OK;
}

static json_t *show_json(const struct dg_option *o, const void *field)
{
	const json_t *v = *(const json_t *const *)field;
	(void)o;
	return v ? json_deep_copy(v) : json_null();
}

static const struct opt_type types[] = {
	[DG_OPT_BOOL] = { "DG_OPT_BOOL", sizeof(bool), alignof(bool),
	                  check_bool, store_bool, show_bool },
	[DG_OPT_INT] = { "DG_OPT_INT", sizeof(int64_t), alignof(int64_t),
	                 check_int, store_int, show_int },
	[DG_OPT_STRING] = { "DG_OPT_STRING", sizeof(const char *), alignof(const char *),
	                    check_string, store_borrowed, show_string },
	[DG_OPT_ENUM] = { "DG_OPT_ENUM", sizeof(int), alignof(int),
	                  check_enum, store_enum, show_enum },
	[DG_OPT_ADDR] = { "DG_OPT_ADDR", sizeof(struct dg_option_addr), alignof(struct dg_option_addr),
	                  check_addr, store_addr, show_addr },
	[DG_OPT_JSON] = { "DG_OPT_JSON", sizeof(const json_t *), alignof(const json_t *),
	                  check_json, store_borrowed, show_json },
};

static const struct opt_type *type_of(const struct dg_option *o)
{
	if (o->type <= 0 || (size_t)o->type >= sizeof(types) / sizeof(types[0]))
		return NULL;
	return &types[o->type];
}

/* ---- the table ---------------------------------------------------------- */

/* struct dg_option as ABI 1.1 and 1.2 declared it: the stride of a table
 * whose descriptor has no option_size. Frozen: never edit. */
struct option_1_1 {
	const char *name;
	int type;
	size_t offset;
	const char *def;
	int64_t min, max;
	const char *choices;
	unsigned flags;
	const char *help;
};
#define OPTION_1_1_END (offsetof(struct option_1_1, help) + sizeof(const char *))
_Static_assert(offsetof(struct dg_option, help) == offsetof(struct option_1_1, help) &&
               offsetof(struct dg_option, flags) == offsetof(struct option_1_1, flags) &&
               sizeof(struct dg_option) >= sizeof(struct option_1_1),
               "struct dg_option is append-only: its 1.1 fields stay where they were");

#define HAS(p, member) ((p)->size >= offsetof(struct dg_plugin, member) + sizeof((p)->member))

static size_t option_stride(const struct dg_plugin *p)
{
	return HAS(p, option_size) && p->option_size ? p->option_size : sizeof(struct option_1_1);
}

/* The bytes of an entry stride bytes long that are fields this host knows:
 * whole fields only, so that an older struct's trailing padding is never
 * read as a newer field. A struct dg_option that grows adds its old end. */
static size_t known_bytes(size_t stride)
{
	return stride >= sizeof(struct dg_option) ? sizeof(struct dg_option) : OPTION_1_1_END;
}

static const char *entry_name(const char *entry)
{
	const char *name;

	memcpy(&name, entry, sizeof(name)); /* the plugin's table: any alignment */
	return name;
}

int dg_options_import(const struct dg_plugin *p, struct dg_option **table, size_t *size,
                      char *err, size_t errlen)
{
	const char *raw = (const char *)p->options;
	size_t stride = option_stride(p), n = 0;

	*table = NULL;
	*size = 0;
	if (!HAS(p, options_size) || !raw)
		return DG_OK;
	if (stride < sizeof(struct option_1_1) || stride > DG_OPTION_SIZE_MAX) {
		snprintf(err, errlen, "option_size %zu is not %zu .. %u (sizeof(struct dg_option))",
		         stride, sizeof(struct option_1_1), DG_OPTION_SIZE_MAX);
		return DG_EINVAL;
	}
	for (; entry_name(raw + n * stride); n++)
		if (n == DG_OPTIONS_MAX) {
			snprintf(err, errlen, "more than %d options (is the table ended by { NULL }?)",
			         DG_OPTIONS_MAX);
			return DG_EINVAL;
		}
	struct dg_option *t = calloc(n + 1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory for %zu options", n);
		return DG_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		memcpy(&t[i], raw + i * stride, known_bytes(stride));
	*table = t;
	*size = p->options_size;
	return DG_OK;
}

const struct dg_option *dg_plugin_options(const struct dg_plugin *p, size_t *size)
{
	*size = 0;
	if (!HAS(p, options_size) || !p->options || option_stride(p) != sizeof(struct dg_option))
		return NULL;
	*size = p->options_size;
	return p->options;
}

/* Parse a default; NULL with msg filled if it is not JSON. */
static json_t *parse_default(const struct dg_option *o, bool *oom, char *msg, size_t len)
{
	json_error_t je;
	json_t *v = dg_json_load(o->def, strlen(o->def), JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
	                         &je, oom);

	if (!v && *oom)
		bad(msg, len, "out of memory");
	else if (!v)
		bad(msg, len, "default '%s' is not JSON text (strings are quoted: \"\\\"x\\\"\"): %s",
		    o->def, je.text);
	return v;
}

static int check_enum_choices(const struct dg_option *o, char *msg, size_t len)
{
	if (!o->choices || !o->choices[0])
		return bad(msg, len, "DG_OPT_ENUM without choices (\"first|second|...\")");
	for (const char *c = o->choices; c; c = strchr(c, '|') ? strchr(c, '|') + 1 : NULL)
		if (*c == '|' || !*c)
			return bad(msg, len, "empty choice in \"%s\"", o->choices);
	if (strlen(o->choices) > 200)
		return bad(msg, len, "choices longer than 200 bytes");
	return DG_OK;
}

static int check_limits(const struct dg_option *o, char *msg, size_t len)
{
	if (o->type == DG_OPT_INT && o->min > o->max)
		return bad(msg, len, "min %lld is above max %lld", (long long)o->min, (long long)o->max);
	if (o->type == DG_OPT_STRING && (o->min < 0 || o->min > o->max))
		return bad(msg, len, "length limits %lld .. %lld are not 0 <= min <= max",
		           (long long)o->min, (long long)o->max);
	if (o->type == DG_OPT_ENUM)
		return check_enum_choices(o, msg, len);
	return DG_OK;
}

static int check_default(const struct dg_option *o, char *msg, size_t len)
{
	char why[400];
	bool oom;

	if (o->flags & DG_OPT_REQUIRED)
		return o->def ? bad(msg, len, "DG_OPT_REQUIRED with a default ('%s'): drop one", o->def)
		              : DG_OK;
	if (!o->def) {
		if (o->type == DG_OPT_INT && ranged(o) && (o->min > 0 || o->max < 0))
			return bad(msg, len, "no default, and 0 is outside %lld .. %lld",
			           (long long)o->min, (long long)o->max);
		return DG_OK;
	}
	json_t *v = parse_default(o, &oom, msg, len);
	if (!v)
		return oom ? DG_ENOMEM : DG_EINVAL;
	int rc = type_of(o)->check(o, v, why, sizeof(why));
	json_decref(v);
	return rc ? bad(msg, len, "default '%s': %s", o->def, why) : DG_OK;
}

/* Field i against the fields before it: inside the struct, aligned, apart. */
static int check_field(const struct dg_option *table, size_t i, size_t size, char *msg, size_t len)
{
	const struct dg_option *o = &table[i];
	const struct opt_type *t = type_of(o);

	if (o->offset > size || size - o->offset < t->size)
		return bad(msg, len, "offset %zu + %zu bytes is past options_size %zu",
		           o->offset, t->size, size);
	if (o->offset % t->align)
		return bad(msg, len, "offset %zu is not aligned for %s", o->offset, t->name);
	for (size_t j = 0; j < i; j++) {
		const struct dg_option *p = &table[j];
		if (!strcmp(p->name, o->name))
			return bad(msg, len, "declared twice");
		if (o->offset < p->offset + type_of(p)->size && p->offset < o->offset + t->size)
			return bad(msg, len, "field (offset %zu) overlaps option '%s' (offset %zu)",
			           o->offset, p->name, p->offset);
	}
	return DG_OK;
}

static int check_one(const struct dg_option *table, size_t i, size_t size, char *msg, size_t len)
{
	const struct dg_option *o = &table[i];
	int rc;

	if (!o->name[0])
		return bad(msg, len, "empty name");
	if (!type_of(o))
		return bad(msg, len, "unknown type %d", o->type);
	if (o->flags & ~DG_OPT_REQUIRED)
		return bad(msg, len, "unknown flags %#x", o->flags & ~DG_OPT_REQUIRED);
	if ((rc = check_field(table, i, size, msg, len)) || (rc = check_limits(o, msg, len)))
		return rc;
	return check_default(o, msg, len);
}

int dg_options_check(const struct dg_option *table, size_t size, char *err, size_t errlen)
{
	char msg[512];
	size_t i;

	if (size == 0 || size > DG_OPTIONS_SIZE_MAX) {
		snprintf(err, errlen, "options_size %zu is not 1 .. %u", size, DG_OPTIONS_SIZE_MAX);
		return DG_EINVAL;
	}
	for (i = 0; table[i].name; i++) {
		if (i == DG_OPTIONS_MAX) {
			snprintf(err, errlen, "more than %d options (is the table ended by { NULL }?)",
			         DG_OPTIONS_MAX);
			return DG_EINVAL;
		}
		int rc = check_one(table, i, size, msg, sizeof(msg));
		if (rc) {
			snprintf(err, errlen, "option '%s': %s", table[i].name, msg);
			return rc;
		}
	}
	return DG_OK;
}

/* ---- a config against the table ----------------------------------------- */

/* One engine row type for every option: d->arg is the option, whose own
 * type checks, stores and shows the value. */
static int parse_option(struct dg_directive_ctx *c, json_t *v, void *obj,
                        const struct dg_directive *d)
{
	const struct dg_option *o = d->arg;
	char msg[512];

	if (type_of(o)->check(o, v, msg, sizeof(msg)))
		return dg_directive_fail(c, "%s", msg);
	type_of(o)->store(o, v, dg_directive_field(obj, d));
	return DG_OK;
}

static json_t *dump_option(struct dg_directive_ctx *c, const void *obj,
                           const struct dg_directive *d)
{
	const struct dg_option *o = d->arg;
	(void)c;
	return type_of(o)->show(o, dg_directive_cfield(obj, d));
}

static const struct dg_directive_type option_type = { parse_option, dump_option };

/* The table in the engine's form: a new array ended by { NULL }, or NULL. */
static struct dg_directive *rows_of(const struct dg_option *table)
{
	size_t n = 0;

	while (table[n].name)
		n++;
	struct dg_directive *rows = calloc(n + 1, sizeof(*rows));
	for (size_t i = 0; rows && i < n; i++)
		rows[i] = (struct dg_directive){
			.key = table[i].name, .type = &option_type, .off = table[i].offset,
			.lo = table[i].min, .hi = table[i].max,
			.required = table[i].flags & DG_OPT_REQUIRED, .arg = &table[i],
		};
	return rows;
}

/* Defaults of the options config leaves out, parsed, held and stored. */
static int fill_defaults(const struct dg_option *table, const json_t *config,
                         struct dg_options *opts, const char *where, char *err, size_t errlen)
{
	char msg[512];
	bool oom;

	for (const struct dg_option *o = table; o->name; o++) {
		if (!o->def || json_object_get(config, o->name))
			continue;
		json_t *v = parse_default(o, &oom, msg, sizeof(msg));
		if (!v || json_array_append_new(opts->hold, v)) { /* checked at load: out of memory */
			snprintf(err, errlen, "%s.%s: default: %s", where, o->name, v ? "out of memory" : msg);
			return v || oom ? DG_ENOMEM : DG_EINVAL;
		}
		type_of(o)->store(o, v, (char *)opts->data + o->offset);
	}
	return DG_OK;
}

int dg_options_new(const struct dg_option *table, size_t size, const json_t *config,
                   const char *where, struct dg_options **out, char *err, size_t errlen)
{
	struct dg_directive_ctx c = {
		.where = where, .style = DG_DIRECTIVE_OPTIONS, .err = err, .errlen = errlen,
	};
	json_t *empty = NULL;
	int rc;

	*out = NULL;
	if (!config)
		config = empty = json_object();
	struct dg_options *opts = calloc(1, sizeof(*opts) + size);
	if (!config || !opts) {
		snprintf(err, errlen, "%s: out of memory for %zu bytes of options", where, size);
		rc = DG_ENOMEM;
		goto out_free;
	}
	opts->size = size;
	opts->hold = json_array();
	opts->rows = rows_of(table);
	if (!opts->hold || !opts->rows || json_array_append(opts->hold, (json_t *)config)) {
		snprintf(err, errlen, "%s: out of memory", where);
		rc = DG_ENOMEM;
		goto out_free;
	}
	/* The engine takes a mutable object (jansson's iterators); it only reads. */
	if ((rc = dg_directive_apply(&c, (json_t *)config, opts->data, opts->rows)) ||
	    (rc = fill_defaults(table, config, opts, where, err, errlen)))
		goto out_free;
	json_decref(empty);
	*out = opts;
	return DG_OK;

out_free:
	dg_options_free(opts);
	json_decref(empty);
	return rc;
}

const void *dg_options_data(const struct dg_options *o)
{
	return o ? o->data : NULL;
}

json_t *dg_options_dump(const struct dg_options *opts)
{
	char err[128];
	struct dg_directive_ctx c = { .style = DG_DIRECTIVE_OPTIONS, .err = err, .errlen = sizeof(err) };

	return dg_directive_dump(&c, opts->data, opts->rows);
}

void dg_options_free(struct dg_options *o)
{
	if (!o)
		return;
	json_decref(o->hold);
	free(o->rows);
	free(o);
}
