/* dgramc: send packets to a UDP service with a dgramd codec and print the
 * replies, over libdgramd. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <dgramd/client.h>

enum {
	EXIT_USAGE = 2,
	EXIT_TIMEOUT = 3,
	EXIT_PARSE = 4,
	EXIT_NETWORK = 5,
};

enum encoding { ENC_TEXT, ENC_HEX, ENC_BASE64 };

struct opts {
	const char *codec;
	const char *target;
	const char *ready_file;
	const char *id_field;
	unsigned timeout_ms;
	bool timeout_given;
	unsigned retries;
	unsigned count;
	bool batch, listen, pretty, json;
	enum encoding enc;
};

static volatile sig_atomic_t stop;

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: dgramc [OPTION]... HOST:PORT [PACKET]...\n"
	        "Send packets to a UDP service with a dgramd codec and print the replies,\n"
	        "one per line. With no PACKET, packets are read from standard input, one per line.\n"
	        "\n"
	        "  -c, --codec SPEC    json (default), msgpack, cbor, raw, length-prefixed, or a\n"
	        "                      JSON object such as\n"
	        "                      '{\"framing\": \"length-prefixed\", \"payload\": \"json\"}'\n"
	        "  -t, --timeout MS    wait this long for each reply (default 1000; with --listen,\n"
	        "                      stop after MS of silence; default: wait forever)\n"
	        "  -r, --retries N     resend a request N more times after a timeout (default 0)\n"
	        "  -n, --count N       replies to wait for after each request (default 1; 0: only\n"
	        "                      send); with --listen, stop after N packets\n"
	        "  -b, --batch         send all packets in one datagram (as many frames as fit),\n"
	        "                      then wait for one reply per packet\n"
	        "  -l, --listen        bind HOST:PORT (port 0: any free port) and print every\n"
	        "                      packet that arrives\n"
	        "      --ready-file FILE\n"
	        "                      with --listen: once bound, write ADDRESS:PORT and a newline\n"
	        "                      to FILE (whole: a reader never sees half of it)\n"
	        "  -x, --hex           bytes packets are hex in arguments, input and output\n"
	        "      --base64        bytes packets are base64 in arguments, input and output\n"
	        "      --id FIELD      JSON: give each request object without FIELD a unique\n"
	        "                      integer FIELD, and skip replies whose FIELD is another\n"
	        "                      request's (late or repeated answers)\n"
	        "  -p, --pretty        indent JSON replies\n"
	        "  -h, --help          show this help and exit\n"
	        "  -V, --version       show the version and exit\n"
	        "\n"
	        "HOST is a name or a numeric address; IPv6 as [::1]:5300.\n"
	        "Exit status: 0 ok, 2 usage error, 3 timeout, 4 parse error (a reply did not\n"
	        "decode, or failed its checksum or signature), 5 network error (name\n"
	        "resolution, ICMP port unreachable, send).\n"
	        "Example: dgramc --codec json 127.0.0.1:5300 '{\"op\":\"ping\"}'\n");
}

static int exit_code(int rc)
{
	switch (rc) {
	case DG_OK: return 0;
	case DG_ETIMEDOUT: return EXIT_TIMEOUT;
	case DG_EPARSE: return EXIT_PARSE;
	case DG_EINVAL: return EXIT_USAGE;
	default: return EXIT_NETWORK;
	}
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void print_bytes(const unsigned char *p, size_t n, enum encoding enc)
{
	if (enc == ENC_HEX) {
		for (size_t i = 0; i < n; i++)
			printf("%02x", p[i]);
	} else if (enc == ENC_BASE64) {
		for (size_t i = 0; i < n; i += 3) {
			unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
			             (i + 2 < n ? p[i + 2] : 0);
			putchar(b64[v >> 18 & 63]);
			putchar(b64[v >> 12 & 63]);
			putchar(i + 1 < n ? b64[v >> 6 & 63] : '=');
			putchar(i + 2 < n ? b64[v & 63] : '=');
		}
	} else {
		fwrite(p, 1, n, stdout);
	}
	putchar('\n');
}

static int unhex(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decode text into bytes (out has room for strlen(text) bytes). */
static bool decode_bytes(const char *text, enum encoding enc, unsigned char *out, size_t *len)
{
	size_t n = strlen(text), o = 0;

	if (enc == ENC_TEXT) {
		memcpy(out, text, n);
		*len = n;
		return true;
	}
	if (enc == ENC_HEX) {
		if (n % 2)
			return false;
		for (size_t i = 0; i < n; i += 2) {
			int hi = unhex(text[i]), lo = unhex(text[i + 1]);
			if (hi < 0 || lo < 0)
				return false;
			out[o++] = (unsigned char)(hi << 4 | lo);
		}
		*len = o;
		return true;
	}
	unsigned v = 0, bits = 0;
	for (size_t i = 0; i < n && text[i] != '='; i++) {
		const char *p = strchr(b64, text[i]);
		if (!p || !text[i])
			return false;
		v = v << 6 | (unsigned)(p - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(v >> bits);
		}
	}
	*len = o;
	return true;
}

static void print_packet(const struct opts *o, const struct dg_packet *p)
{
	if (p->json) {
		json_dumpf(p->json, stdout, JSON_ENCODE_ANY | (o->pretty ? JSON_INDENT(2) : JSON_COMPACT));
		putchar('\n');
	} else {
		print_bytes(p->data, p->len, o->enc);
	}
	fflush(stdout);
}

/* Build a packet from text; *buf and the packet's json are the caller's. */
static bool make_packet(const struct opts *o, const char *text, struct dg_packet *p,
                        unsigned char **buf, const char *where)
{
	memset(p, 0, sizeof(*p));
	*buf = NULL;
	if (o->json) {
		json_error_t je;
		p->json = json_loads(text, JSON_DECODE_ANY, &je);
		if (!p->json)
			fprintf(stderr, "dgramc: %s: not JSON: %s (column %d)\n", where, je.text, je.column);
		return p->json != NULL;
	}
	*buf = malloc(strlen(text) + 1);
	if (!*buf || !decode_bytes(text, o->enc, *buf, &p->len)) {
		fprintf(stderr, "dgramc: %s: not %s\n", where, o->enc == ENC_HEX ? "hex" : "base64");
		free(*buf);
		*buf = NULL;
		return false;
	}
	p->data = *buf;
	return true;
}

/* Wait for n replies and print them; returns the first error's dg_rc. */
static int print_replies(struct dg_client *c, const struct opts *o, unsigned n, bool first_sent)
{
	struct dg_client_error e;
	struct dg_packet p;

	for (unsigned i = first_sent ? 1 : 0; i < n; i++) {
		int rc = dg_client_recv(c, &p, (int)o->timeout_ms, &e);
		if (rc) {
			fprintf(stderr, "dgramc: %s\n", e.message);
			return rc;
		}
		print_packet(o, &p);
	}
	return DG_OK;
}

/* One request with retries, then the rest of --count replies. */
static int one(struct dg_client *c, const struct opts *o, const struct dg_packet *pkt)
{
	struct dg_client_error e;
	struct dg_packet reply;

	if (o->count == 0) {
		int rc = dg_client_send(c, pkt, 1, &e);
		if (rc)
			fprintf(stderr, "dgramc: %s\n", e.message);
		return rc;
	}
	int rc = dg_client_request(c, pkt, &reply, &e);
	if (rc) {
		fprintf(stderr, "dgramc: %s\n", e.message);
		return rc;
	}
	print_packet(o, &reply);
	return print_replies(c, o, o->count, true);
}

/* Write the bound address to path: to path.tmp, then renamed, so a
 * reader sees all of it or nothing. */
static int write_ready(struct dg_client *c, const char *path)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN], tmp[4096];
	unsigned port;
	FILE *f;

	if (getsockname(dg_client_fd(c), (struct sockaddr *)&ss, &len) < 0) {
		fprintf(stderr, "dgramc: getsockname: %s\n", strerror(errno));
		return DG_ENET;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(f = fopen(tmp, "w"))) {
		fprintf(stderr, "dgramc: cannot write '%s': %s\n", tmp, strerror(errno));
		return DG_EINVAL; /* exit 2: the path given cannot be used */
	}
	fprintf(f, ss.ss_family == AF_INET6 ? "[%s]:%u\n" : "%s:%u\n", host, port);
	if (fclose(f) || rename(tmp, path)) {
		fprintf(stderr, "dgramc: cannot write '%s': %s\n", path, strerror(errno));
		unlink(tmp);
		return DG_EINVAL; /* exit 2: the path given cannot be used */
	}
	return DG_OK;
}

static int run_listen(struct dg_client *c, const struct opts *o)
{
	struct dg_client_error e;
	struct dg_packet p;
	int rc = DG_OK;

	if (o->ready_file && (rc = write_ready(c, o->ready_file)))
		return rc;
	for (unsigned got = 0; !stop && (!o->count || got < o->count); ) {
		rc = dg_client_recv(c, &p, o->timeout_given ? (int)o->timeout_ms : 200, &e);
		if (rc == DG_ETIMEDOUT && !o->timeout_given) {
			rc = DG_OK;
			continue;
		}
		if (rc == DG_EPARSE) {
			fprintf(stderr, "dgramc: %s\n", e.message);
			continue; /* a sink goes on */
		}
		if (rc) {
			fprintf(stderr, "dgramc: %s\n", e.message);
			break;
		}
		print_packet(o, &p);
		got++;
	}
	return rc;
}

static int run_packets(struct dg_client *c, const struct opts *o, char **args, int nargs)
{
	struct dg_client_error e;
	int first = DG_OK;
	char *line = NULL, where[64];
	size_t cap = 0;
	unsigned lineno = 0;
	size_t max = nargs > 0 ? (size_t)nargs : 1;
	struct dg_packet *batch = calloc(max, sizeof(*batch));
	unsigned char **bufs = calloc(max, sizeof(*bufs));
	size_t n = 0;
	for (int i = 0; batch && bufs && !stop; i++) {
		const char *text;
		if (nargs > 0) {
			if (i >= nargs)
				break;
			text = args[i];
			snprintf(where, sizeof(where), "packet %d", i + 1);
		} else {
			ssize_t len = getline(&line, &cap, stdin);
			if (len < 0)
				break;
			while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			lineno++;
			if (len == 0 && o->json)
				continue;
			text = line;
			snprintf(where, sizeof(where), "stdin line %u", lineno);
		}
		if (!make_packet(o, text, &batch[n], &bufs[n], where)) {
			first = first ? first : DG_EINVAL;
			continue;
		}
		if (o->batch) {
			n++;
			continue;
		}
		int rc = one(c, o, &batch[0]);
		first = first ? first : rc;
		json_decref(batch[0].json);
		free(bufs[0]);
	}
	if (o->batch && n) {
		int rc = dg_client_send(c, batch, n, &e);
		if (rc)
			fprintf(stderr, "dgramc: %s\n", e.message);
		else
			rc = print_replies(c, o, (unsigned)n * (o->count ? o->count : 0), false);
		first = first ? first : rc;
	}
	for (size_t i = 0; o->batch && i < n; i++) {
		json_decref(batch[i].json);
		free(bufs[i]);
	}
	free(batch);
	free(bufs);
	free(line);
	return first;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Does the codec named "framing+payload" carry JSON trees? */
static bool tree_payload(const char *name)
{
	static const char *const trees[] = { "json", "msgpack", "cbor" };
	const char *plus = strrchr(name, '+');

	for (size_t i = 0; plus && i < sizeof(trees) / sizeof(trees[0]); i++)
		if (!strcmp(plus + 1, trees[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "codec", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "retries", required_argument, NULL, 'r' },
		{ "count", required_argument, NULL, 'n' },
		{ "batch", no_argument, NULL, 'b' },
		{ "listen", no_argument, NULL, 'l' },
		{ "hex", no_argument, NULL, 'x' },
		{ "base64", no_argument, NULL, 'B' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "ready-file", required_argument, NULL, 'R' },
		{ "id", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .codec = "json", .timeout_ms = 1000, .count = 1 };
	int opt;
	char *end;

	while ((opt = getopt_long(argc, argv, "c:t:r:n:blxphV", longopts, NULL)) != -1) {
		unsigned long v = 0;
		if (optarg && strchr("trn", opt)) {
			v = strtoul(optarg, &end, 10);
			if (*end || !*optarg || v > 86400000 || optarg[0] == '-') {
				fprintf(stderr, "dgramc: -%c: '%s' is not a number\n", opt, optarg);
				return EXIT_USAGE;
			}
		}
		switch (opt) {
		case 'c': o.codec = optarg; break;
		case 't': o.timeout_ms = (unsigned)v; o.timeout_given = true; break;
		case 'r': o.retries = (unsigned)v; break;
		case 'n': o.count = (unsigned)v; break;
		case 'b': o.batch = true; break;
		case 'l': o.listen = true; break;
		case 'x': o.enc = ENC_HEX; break;
		case 'B': o.enc = ENC_BASE64; break;
		case 'p': o.pretty = true; break;
		case 'R': o.ready_file = optarg; break;
		case 'I': o.id_field = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("dgramc %s\n", PACKAGE_VERSION); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "dgramc: missing HOST:PORT\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	o.target = argv[optind++];
	if (o.ready_file && !o.listen) {
		fprintf(stderr, "dgramc: --ready-file needs --listen\n");
		return EXIT_USAGE;
	}
	if (o.timeout_given && o.timeout_ms == 0 && !o.listen) {
		fprintf(stderr, "dgramc: --timeout must be at least 1 ms\n");
		return EXIT_USAGE;
	}
	struct dg_client_opts co = DG_CLIENT_OPTS_INIT;
	co.timeout_ms = o.timeout_ms;
	co.retries = o.retries;
	co.bind = o.listen;
	co.id_field = o.id_field;
	struct dg_client_error e;
	struct dg_client *c;
	if (dg_client_open(o.target, o.codec, &co, &c, &e)) {
		fprintf(stderr, "dgramc: %s\n", e.message);
		return exit_code(e.code);
	}
	/* The codec decides how packets are written: JSON text for the payloads
	 * that decode into a JSON tree (json, msgpack, cbor), else bytes. */
	o.json = tree_payload(dg_client_codec_name(c));
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int rc = o.listen ? run_listen(c, &o) : run_packets(c, &o, argv + optind, argc - optind);
	dg_client_close(c);
	return exit_code(rc);
}
