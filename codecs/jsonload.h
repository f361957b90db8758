/* Parsing JSON with jansson so that running out of memory is an error.
 *
 * jansson's lexer ignores a failed allocation while it collects a token
 * (lex_save): the text parses on with characters missing, so a key or a
 * string can come back silently changed. dg_json_load() notices any failed
 * allocation inside the parse and then returns NULL with *oom set.
 *
 * What it cannot catch: when the allocation that fails is the one that
 * would save a string's closing quote (a token buffer growing at 16, 32,
 * 64... bytes), jansson 2.14's lex_scan_string copies on past the token
 * (reads and writes out of bounds). Only a fix in jansson can prevent that;
 * on Linux malloc rarely fails (overcommit), and the daemon bounds decoded
 * memory by measuring it (membudget.h), never by failing allocations. */
#ifndef DG_JSONLOAD_H
#define DG_JSONLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* json_loadb() with the same flags and error; NULL with *oom true when an
 * allocation failed (je then says "out of memory"), NULL with *oom false
 * for a parse error. The result is owned by the caller (json_decref).
 * Thread-safe; keeps watching the allocator jansson had at the first call
 * (a later json_set_alloc_funcs() by someone else ends the watching). */
json_t *dg_json_load(const char *buf, size_t len, size_t flags, json_error_t *je, bool *oom);

#endif
