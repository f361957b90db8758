/* Declarative plugin options (dg_plugin.options, ABI 1.1), as nginx
 * directives are: the table is checked when the plugin loads, a handler's
 * "config" object is checked against it before init(), and the struct the
 * plugin reads through host->options() is filled with defaults and given
 * values, by the directive engine (directive.h) that parses the config's
 * own keys. Stand-alone: jansson, the plugin header, the address parser and
 * the directive engine. */
#ifndef DG_OPTIONS_H
#define DG_OPTIONS_H

#include <stddef.h>

#include <jansson.h>
#include <dgramd/plugin.h>

#define DG_OPTIONS_MAX 256            /* entries in one table */
#define DG_OPTIONS_SIZE_MAX (1u << 20) /* options_size */

/* The filled struct, with a reference to the config and the parsed
 * defaults (DG_OPT_STRING and DG_OPT_JSON values point into them) and the
 * table it was parsed by. Opaque. */
struct dg_options;

/* The largest dg_plugin.option_size accepted: a struct dg_option that
 * grew this much is a bad descriptor, not a newer one. */
#define DG_OPTION_SIZE_MAX 1024u

/* The plugin's option table copied into this host's layout: each entry,
 * dg_plugin.option_size bytes apart in the plugin's table (the 1.1
 * struct's size when the descriptor predates option_size or says 0), is
 * copied into a zeroed struct dg_option, so fields the plugin's headers did
 * not have read as 0 and fields this host does not know are ignored. Only
 * p->size bytes of p are read. DG_OK with *table NULL (no options: none
 * declared, or a descriptor built before dg_plugin.options) or a new array
 * ended by { NULL } (free()) and options_size in *size; DG_EINVAL (an
 * option_size below the 1.1 struct or above DG_OPTION_SIZE_MAX, a table of
 * more than DG_OPTIONS_MAX entries) or DG_ENOMEM, with the problem in err. */
int dg_options_import(const struct dg_plugin *p, struct dg_option **table, size_t *size,
                      char *err, size_t errlen);

/* The option table of a descriptor in this host's layout (the loader's
 * copy, whose table dg_options_import made, or a descriptor built with
 * these headers), and its options_size into *size; NULL when it declares
 * none, when its size field says it was built before dg_plugin.options
 * (ABI 1.0), or when its option_size is another struct dg_option's (read
 * such a table with dg_options_import). Only p->size bytes of p are read. */
const struct dg_option *dg_plugin_options(const struct dg_plugin *p, size_t *size);

/* Check a table before anything uses it: names unique and non-empty, known
 * types and flags, each field inside size, aligned for its type and
 * overlapping no other, ranges and choices sane, every default valid JSON of
 * the option's type and within its limits. DG_OK, or DG_EINVAL / DG_ENOMEM
 * with "option 'NAME': problem" in err. */
int dg_options_check(const struct dg_option *table, size_t size, char *err, size_t errlen);

/* Check config (an object; NULL is {}) against a table that passed
 * dg_options_check() and fill a new struct of size bytes: unknown keys (with
 * a "did you mean"), JSON types, ranges, lengths, choices, addresses,
 * required keys. Messages are "WHERE.KEY: problem", where is the config's
 * file and key path ("dgramd.json: listeners[1].handler.config"). DG_OK with
 * *out owned by the caller (dg_options_free), or DG_EINVAL / DG_ENOMEM with
 * *out NULL and err filled. config is referenced, not copied. */
int dg_options_new(const struct dg_option *table, size_t size, const json_t *config,
                   const char *where, struct dg_options **out, char *err, size_t errlen);

/* The struct: options_size bytes, max-aligned. Borrowed until free. */
const void *dg_options_data(const struct dg_options *o);

/* Every option with its value in o, in table order, as the config would
 * spell it (unset strings, addresses and JSON are left out), through the
 * table o was filled by: what -T prints. A new object, or NULL if out of
 * memory. */
json_t *dg_options_dump(const struct dg_options *o);

/* Free o, its copies and its reference to the config. NULL: no-op. */
void dg_options_free(struct dg_options *o);

#endif
