/* Table-driven parse and dump of a JSON object into a struct, as nginx
 * directives are: one engine for the config's directives (conf.c) and the
 * plugins' declared options (options.c). A table is an array of rows ended
 * by { NULL }; each row names a key, a type (a parse and a dump function),
 * the offset of its field in the target struct, limits, whether it is
 * required and an argument of its type's. The engine finds each given key
 * (or says "unknown key" with a "did you mean"), hands the value to its
 * type, checks required keys and keeps the key path for messages; -T walks
 * the same table back through each type's dump. Stand-alone: jansson only. */
#ifndef DG_DIRECTIVE_H
#define DG_DIRECTIVE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct dg_directive;

/* One parse or dump: where its messages go and the key path so far. */
struct dg_directive_ctx {
	const char *where; /* conf: the file name; plugin options: "FILE: KEY.PATH" */
	unsigned style;    /* DG_DIRECTIVE_* */
	char path[256];    /* key path of the value being set, below where */
	size_t plen;
	char *err;
	size_t errlen;
};

/* The messages' shape. Config directives: "FILE: PATH: problem" ("(top
 * level)" for an empty path), an unknown key as given, the last key within
 * an edit distance of 2 suggested. Plugin options (DG_DIRECTIVE_OPTIONS):
 * "WHERE.PATH: problem", an unknown key quoted (controls escaped, at most
 * 64 bytes), the first near key suggested, else the known keys listed. */
#define DG_DIRECTIVE_CONF 0u
#define DG_DIRECTIVE_OPTIONS 1u

struct dg_directive_type {
	/* Check v and store it into the field of obj that d says; DG_OK, or
	 * a negative dg_rc with the message set by dg_directive_fail. */
	int (*parse)(struct dg_directive_ctx *c, json_t *v, void *obj, const struct dg_directive *d);
	/* The field's value as the config spells it, a new reference; JSON
	 * null leaves the key out (unset, no default); NULL: out of memory or
	 * c->err says why. */
	json_t *(*dump)(struct dg_directive_ctx *c, const void *obj, const struct dg_directive *d);
};

struct dg_directive {
	const char *key;
	const struct dg_directive_type *type;
	size_t off;           /* of the field in the target struct */
	long long lo, hi;     /* limits, as the type reads them */
	bool required;
	const void *arg;      /* the type's: a sub-table, a plugin's struct dg_option */
};

/* Apply the JSON object obj to target through table: every key known and
 * parsed by its row's type, in the object's order, then every required key
 * present. DG_OK, or DG_EINVAL (or the type's code) with c->err filled. */
int dg_directive_apply(struct dg_directive_ctx *c, json_t *obj, void *target,
                       const struct dg_directive *table);

/* Every row of table with its value in obj, in table order, through each
 * type's dump (rows that dump JSON null are left out): what -T prints. A
 * new object, or NULL (out of memory, or c->err says why). */
json_t *dg_directive_dump(struct dg_directive_ctx *c, const void *obj,
                          const struct dg_directive *table);

/* Fill c->err for the value at the current key path; DG_EINVAL. */
__attribute__((format(printf, 2, 3)))
int dg_directive_fail(struct dg_directive_ctx *c, const char *fmt, ...);

/* Extend the key path by ".key" or "[i]"; the length to pop back to. */
size_t dg_directive_push_key(struct dg_directive_ctx *c, const char *key);
size_t dg_directive_push_index(struct dg_directive_ctx *c, size_t i);
void dg_directive_pop(struct dg_directive_ctx *c, size_t saved);

/* The field of obj at d->off. */
static inline void *dg_directive_field(void *obj, const struct dg_directive *d)
{
	return (char *)obj + d->off;
}

static inline const void *dg_directive_cfield(const void *obj, const struct dg_directive *d)
{
	return (const char *)obj + d->off;
}

/* A sub-object of keys applied to the struct at d->off (arg: its table);
 * dumped as an object of those keys. */
extern const struct dg_directive_type dg_directive_object;

/* Edit distance between two short strings (99 for 63 bytes or more): a
 * key within 2 of a known one gets a "did you mean". */
unsigned dg_edit_distance(const char *a, const char *b);

/* s for a message: at most 64 bytes, controls and '\\' as \xNN, "..." if
 * cut. Into buf (len: 80 is enough). */
const char *dg_directive_quote(const char *s, char *buf, size_t len);

#endif
