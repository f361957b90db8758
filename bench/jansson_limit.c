/* bench/jansson_limit: what jansson alone costs per JSON datagram, the
 * floor for any jansson-based server beside the kernel's share.
 *
 *   jansson_limit FILE [SECONDS]
 *
 * Loads FILE with json_loadb and dumps it back with json_dumpb into a
 * buffer, in a tight loop, with the flags the "json" payload uses
 * (codecs/json.c: JSON_REJECT_DUPLICATES | JSON_DECODE_ANY to load;
 * codecs/codec.c: JSON_COMPACT | JSON_ENCODE_ANY to dump), through glibc's
 * malloc (jansson's default allocator). Prints one line:
 *   jansson_limit: us_per_dgram=4.93 load_us=.. dump_us=.. iterations=N bytes=217
 * (process CPU time, not wall clock, so a busy machine inflates it less). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static char text[65536], out[65536];
	double secs = argc > 2 ? atof(argv[2]) : 2.0;
	double t_load = 0, t_dump = 0;
	unsigned long iters = 0;
	size_t len;
	FILE *f;

	if (argc < 2) {
		fprintf(stderr, "usage: jansson_limit FILE [SECONDS]\n");
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	len = fread(text, 1, sizeof(text), f);
	fclose(f);
	while (t_load + t_dump < secs) {
		/* 1,000 rounds between clock reads: the clock costs nothing. */
		double a = cpu_now(), b, c;
		double la, da;
		for (int i = 0; i < 1000; i++) {
			json_error_t je;
			json_t *v = json_loadb(text, len, LOAD_FLAGS, &je);
			if (!v) {
				fprintf(stderr, "%s: %s at byte %d\n", argv[1], je.text, je.position);
				return 1;
			}
			size_t n = json_dumpb(v, out, sizeof(out), DUMP_FLAGS);
			if (n == 0 || n > sizeof(out)) {
				fprintf(stderr, "%s: cannot dump\n", argv[1]);
				return 1;
			}
			json_decref(v);
		}
		b = cpu_now();
		/* The same 1,000 loads alone, to split the time. */
		for (int i = 0; i < 1000; i++) {
			json_error_t je;
			json_decref(json_loadb(text, len, LOAD_FLAGS, &je));
		}
		c = cpu_now();
		la = c - b;
		da = (b - a) - la;
		t_load += la;
		t_dump += da;
		iters += 1000;
	}
	printf("jansson_limit: us_per_dgram=%.3f load_us=%.3f dump_us=%.3f iterations=%lu bytes=%zu\n",
	       (t_load + t_dump) / (double)iters * 1e6, t_load / (double)iters * 1e6,
	       t_dump / (double)iters * 1e6, iters, len);
	return 0;
}
