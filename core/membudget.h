/* The memory budget of one worker process: bytes held by requests in
 * progress (their decoded packets, and the datagram copy a request with
 * frames left keeps) plus bytes waiting in peer queues, against the
 * config's memory_budget. Decoded packets are measured, not estimated:
 * jansson allocates through a counting allocator installed by the daemon.
 * Single-threaded: everything here runs on the worker's event-loop thread
 * (jansson values must not be made or freed on other threads). */
#ifndef DG_MEMBUDGET_H
#define DG_MEMBUDGET_H

#include <stdbool.h>
#include <stddef.h>

struct dg_membudget {
	size_t budget; /* memory_budget, bytes */
	size_t held;   /* requests in progress */
	size_t queued; /* peer queues, all listeners (as the queues count them) */
};

/* Bytes of freed small blocks the allocator keeps for reuse while a server
 * runs, at most (none under AddressSanitizer). Not part of the budget: a
 * fixed overhead, like the receive buffers. */
#define DG_MEMBUDGET_CACHE (512u * 1024)

/* Route jansson's allocations in this process through the counting
 * allocator. Call once, first thing in the daemon's main(), before any
 * jansson value exists (a value made before would be freed through the
 * wrong function). Never from libdgramd or plugins: they run inside other
 * processes, or share the daemon's. */
void dg_membudget_install(void);

/* Bytes jansson holds now in this process, as glibc's malloc lays them out
 * (each block rounded to 16 bytes, with its size word and our header);
 * 0 if the allocator is not installed. */
size_t dg_membudget_json_live(void);

/* Bytes of freed blocks kept for reuse now (not in json_live). */
size_t dg_membudget_cached(void);

/* Keep at most bytes of freed blocks (frees what is over now). 0, the
 * default: every block goes back to malloc at once. */
void dg_membudget_set_cache(size_t bytes);

/* A server starts (true: keep up to DG_MEMBUDGET_CACHE) or is released
 * (false: the cache is emptied, so a process that exits has freed every
 * block, as valgrind checks). */
void dg_membudget_serving(bool on);

/* Bytes that fit under the budget now (0 when it is used up). */
static inline size_t dg_membudget_room(const struct dg_membudget *m)
{
	size_t used = m->held + m->queued;
	return used < m->budget ? m->budget - used : 0;
}

#endif
