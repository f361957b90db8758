/* Run a fuzz target over files: the corpus in every build (no libFuzzer
 * needed), so a crash once found stays fixed. With no arguments it replays
 * $DG_SRCDIR/tests/fuzz/corpus/<target>/. */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static unsigned files;

static void replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(1 << 20);
	size_t n;

	if (!f || !buf) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	n = fread(buf, 1, 1 << 20, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	files++;
}

static void replay(const char *path)
{
	struct stat st;
	char sub[4096];

	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: no such corpus\n", path);
		exit(1);
	}
	if (!S_ISDIR(st.st_mode)) {
		replay_file(path);
		return;
	}
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		replay(sub);
	}
	if (d)
		closedir(d);
}

int main(int argc, char **argv)
{
	char def[4096];

	if (argc < 2) {
		const char *src = getenv("DG_SRCDIR") ? getenv("DG_SRCDIR") : "..";
		snprintf(def, sizeof(def), "%s/tests/fuzz/corpus/%s", src, FUZZ_NAME);
		replay(def);
	}
	for (int i = 1; i < argc; i++)
		replay(argv[i]);
	printf("replayed %u inputs through %s without a crash\n", files, FUZZ_NAME);
	printf("DG-RESULT passed=%u failed=0\n", files ? 1 : 0);
	return files ? 0 : 1;
}
