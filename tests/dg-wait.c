/* dg-wait: wait, without sleeping, until a file exists or holds a text, or
 * a process ends; for the shell and Python tests (the C tests call
 * tests/waitfor.c directly).
 *
 *     dg-wait [-t MS] [-p PID] [-n COUNT] FILE [TEXT]
 *     dg-wait [-t MS] -g PID
 *
 * Exit 0 when it happened, 1 on timeout (default 10000 ms), 2 when PID
 * ended first, 3 on an error. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "waitfor.h"

int main(int argc, char **argv)
{
	unsigned timeout = 10000, count = 1;
	pid_t pid = 0, gone = 0;
	int c;

	while ((c = getopt(argc, argv, "t:p:n:g:")) != -1) {
		switch (c) {
		case 't': timeout = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'p': pid = (pid_t)strtol(optarg, NULL, 10); break;
		case 'n': count = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'g': gone = (pid_t)strtol(optarg, NULL, 10); break;
		default: goto usage;
		}
	}
	if (gone > 0 && optind == argc)
		return dg_wait_gone(gone, timeout) ? 0 : 1;
	if (optind != argc - 1 && optind != argc - 2)
		goto usage;
	return (int)dg_wait_file(argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL, count, pid,
	                         timeout);
usage:
	fprintf(stderr, "usage: dg-wait [-t MS] [-p PID] [-n COUNT] FILE [TEXT] | dg-wait [-t MS] -g PID\n");
	return 3;
}
