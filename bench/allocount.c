/* bench/allocount.so: count heap allocations of a process tree (LD_PRELOAD).
 *
 *   ALLOCOUNT_DIR=/tmp/x LD_PRELOAD=./allocount.so dgramd ...
 *
 * Counts malloc, calloc, realloc, posix_memalign, aligned_alloc and free
 * calls (glibc's own entry points do the work), and at exit, _exit included
 * (dgramd's workers leave with _exit), writes "mallocs frees" to
 * $ALLOCOUNT_DIR/<pid>. Per datagram: run the same load twice with
 * different request counts and divide the difference of the sums (startup
 * cancels out). Single-threaded counters: dgramd's processes are. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static unsigned long n_alloc, n_free;

void *malloc(size_t n)
{
	n_alloc++;
	return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	n_alloc++;
	return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	n_alloc++;
	return __libc_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	n_alloc++;
	*out = __libc_memalign(align, n);
	return *out ? 0 : 12; /* ENOMEM */
}

void *aligned_alloc(size_t align, size_t n)
{
	n_alloc++;
	return __libc_memalign(align, n);
}

void free(void *p)
{
	if (p)
		n_free++;
	__libc_free(p);
}

static void report(void)
{
	const char *dir = getenv("ALLOCOUNT_DIR");
	char path[4096], line[64];

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/%ld", dir, (long)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int n = snprintf(line, sizeof(line), "%lu %lu\n", n_alloc, n_free);
	if (write(fd, line, (size_t)n) < 0)
		n = 0;
	close(fd);
}

__attribute__((destructor)) static void at_exit(void)
{
	report();
}

void _exit(int status)
{
	report();
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}
