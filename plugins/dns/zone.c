/* dns zones: the config's "zones" array, checked and loaded into one hash
 * table of owner names (see dns.h). Runs once per instance, at init: every
 * error names its key path. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <dgramd/plugin.h>

#include "dns.h"

#define DEFAULT_TTL 3600
#define TTL_MAX 2147483647 /* RFC 2181 */

/* Where the loader is, for error messages. */
struct loader {
	struct dns_db *db;
	struct dns_zone *zone;
	char *err;
	size_t errlen;
	char path[160]; /* "zones[0].records[3]" */
};

static int fail(struct loader *ld, const char *key, const char *fmt, ...) DG_PRINTF(3, 4);

static int fail(struct loader *ld, const char *key, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(ld->err, ld->errlen, "config.%s%s%s: ", ld->path, key ? "." : "", key ? key : "");

	if (n < 0 || (size_t)n >= ld->errlen)
		return DG_EINVAL;
	va_start(ap, fmt);
	vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return DG_EINVAL;
}

/* FNV-1a: names in the table are fixed at init, so a peer cannot lengthen
 * a probe run by choosing what it asks. */
uint64_t dns_name_hash(const uint8_t *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ name[i]) * 0x100000001b3ull;
	return h;
}

struct dns_node *dns_db_find(const struct dns_db *db, const uint8_t *name, size_t len)
{
	if (!db->slot)
		return NULL;
	uint64_t h = dns_name_hash(name, len);
	for (size_t i = (size_t)h & db->mask;; i = (i + 1) & db->mask) {
		struct dns_node *n = db->slot[i];
		if (!n)
			return NULL;
		if (n->hash == h && n->len == len && !memcmp(n->name, name, len))
			return n;
	}
}

static void slot_put(struct dns_node **slot, size_t mask, struct dns_node *n)
{
	size_t i = (size_t)n->hash & mask;

	while (slot[i])
		i = (i + 1) & mask;
	slot[i] = n;
}

static int db_reserve(struct dns_db *db)
{
	size_t slots = db->slot ? db->mask + 1 : 0;

	if ((db->nodes + 1) * 2 <= slots)
		return DG_OK;
	size_t n = slots ? slots * 2 : 64;
	struct dns_node **fresh = calloc(n, sizeof(*fresh));
	if (!fresh)
		return DG_ENOMEM;
	for (size_t i = 0; i < slots; i++)
		if (db->slot[i])
			slot_put(fresh, n - 1, db->slot[i]);
	free(db->slot);
	db->slot = fresh;
	db->mask = n - 1;
	return DG_OK;
}

/* The node of name in the current zone, made (with the empty
 * non-terminals between it and the apex) when missing. */
static struct dns_node *node_get(struct loader *ld, const uint8_t *name, size_t len)
{
	struct dns_node *n = dns_db_find(ld->db, name, len);

	if (n)
		return n;
	if (db_reserve(ld->db))
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	memcpy(n->name, name, len);
	n->len = (uint8_t)len;
	n->hash = dns_name_hash(name, len);
	n->zone = ld->zone;
	slot_put(ld->db->slot, ld->db->mask, n);
	ld->db->nodes++;
	if (ld->zone->apex && len > ld->zone->apex->len && !node_get(ld, name + name[0] + 1, len - name[0] - 1))
		return NULL;
	return n;
}

static bool is_under(const uint8_t *name, size_t len, const uint8_t *origin, size_t olen)
{
	if (len < olen || memcmp(name + len - olen, origin, olen))
		return false;
	/* On a label boundary: walk the labels of name. */
	for (size_t i = 0; i < len; i += name[i] + 1u)
		if (len - i == olen)
			return true;
	return false;
}

/* Text to wire form, lowercase. Relative to origin unless it ends with a
 * dot; "@" is the origin. NULL on success, else why not. */
static const char *name_parse(const char *text, const uint8_t *origin, size_t olen,
                              uint8_t *out, size_t *outlen)
{
	size_t n = 0, tl = strlen(text);

	if (!strcmp(text, "@")) {
		if (!origin)
			return "'@' needs an origin";
		memcpy(out, origin, olen);
		*outlen = olen;
		return NULL;
	}
	if (!strcmp(text, ".")) {
		out[0] = 0;
		*outlen = 1;
		return NULL;
	}
	bool absolute = tl && text[tl - 1] == '.';
	const char *p = text;
	while (*p && !(absolute && p == text + tl - 1 && *p == '.')) {
		size_t l = strcspn(p, ".");
		if (l == 0)
			return "empty label";
		if (l > 63)
			return "label longer than 63 bytes";
		if (n + 1 + l + 1 > DNS_NAME_MAX)
			return "name longer than 255 bytes";
		out[n++] = (uint8_t)l;
		for (size_t i = 0; i < l; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c == '*')
				return "wildcards are not supported";
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      c == '-' || c == '_'))
				return "labels may hold letters, digits, '-' and '_' only";
			out[n++] = (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		p += l;
		if (*p == '.')
			p++;
	}
	if (absolute || !origin) {
		out[n++] = 0;
	} else {
		if (n + olen > DNS_NAME_MAX)
			return "name longer than 255 bytes";
		memcpy(out + n, origin, olen);
		n += olen;
	}
	*outlen = n;
	return NULL;
}

static void name_print(const uint8_t *name, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = 0;
	for (size_t i = 0; name[i] && o + 65 < len; i += name[i] + 1u) {
		memcpy(buf + o, name + i + 1, name[i]);
		o += name[i];
		buf[o++] = '.';
	}
	if (!o && len > 1)
		buf[o++] = '.';
	buf[o] = 0;
}

/* ---- rdata parsers, one per type: fill out[0..*len) or say why not ---- */

typedef const char *(*rdata_fn)(struct loader *ld, const json_t *data, uint8_t *out, size_t *len);

static const char *rd_addr(int af, const json_t *data, uint8_t *out, size_t *len)
{
	if (!json_is_string(data) || inet_pton(af, json_string_value(data), out) != 1)
		return af == AF_INET ? "expected an IPv4 address (\"192.0.2.1\")" :
		                       "expected an IPv6 address (\"2001:db8::1\")";
	*len = af == AF_INET ? 4 : 16;
	return NULL;
}

static const char *rd_a(struct loader *ld, const json_t *data, uint8_t *out, size_t *len)
{
	(void)ld;
	return rd_addr(AF_INET, data, out, len);
}

static const char *rd_aaaa(struct loader *ld, const json_t *data, uint8_t *out, size_t *len)
{
	(void)ld;
	return rd_addr(AF_INET6, data, out, len);
}

static const char *rd_name(struct loader *ld, const json_t *data, uint8_t *out, size_t *len)
{
	if (!json_is_string(data))
		return "expected a domain name";
	return name_parse(json_string_value(data), ld->zone->apex->name, ld->zone->apex->len, out, len);
}

static const char *rd_mx(struct loader *ld, const json_t *data, uint8_t *out, size_t *len)
{
	json_t *pref = json_object_get(data, "preference"), *ex = json_object_get(data, "exchange");

	if (!json_is_object(data) || json_object_size(data) != 2 || !json_is_integer(pref) ||
	    json_integer_value(pref) < 0 || json_integer_value(pref) > 65535 || !ex)
		return "expected {\"preference\": 0..65535, \"exchange\": NAME}";
	out[0] = (uint8_t)(json_integer_value(pref) >> 8);
	out[1] = (uint8_t)json_integer_value(pref);
	const char *why = rd_name(ld, ex, out + 2, len);
	*len += 2;
	return why;
}

static const char *rd_txt(struct loader *ld, const json_t *data, uint8_t *out, size_t *len)
{
	size_t n = 0, i;
	json_t *s;

	(void)ld;
	if (json_is_string(data)) {
		json_t *one = json_pack("[O]", data);
		const char *why = one ? rd_txt(ld, one, out, len) : "out of memory";
		json_decref(one);
		return why;
	}
	if (!json_is_array(data) || !json_array_size(data))
		return "expected a string or a non-empty array of strings";
	json_array_foreach(data, i, s) {
		if (!json_is_string(s))
			return "expected a string or a non-empty array of strings";
		size_t l = json_string_length(s);
		if (l > 255)
			return "a TXT string is longer than 255 bytes";
		if (n + 1 + l > 65535)
			return "TXT data longer than 65535 bytes";
		out[n++] = (uint8_t)l;
		memcpy(out + n, json_string_value(s), l);
		n += l;
	}
	*len = n;
	return NULL;
}

struct kind_desc {
	const char *name;
	uint16_t type;
	rdata_fn parse; /* NULL: not allowed in "records" */
};

static const struct kind_desc kinds[DNS_K_COUNT] = {
	[DNS_K_A] = { "A", DNS_T_A, rd_a },
	[DNS_K_AAAA] = { "AAAA", DNS_T_AAAA, rd_aaaa },
	[DNS_K_CNAME] = { "CNAME", DNS_T_CNAME, rd_name },
	[DNS_K_MX] = { "MX", DNS_T_MX, rd_mx },
	[DNS_K_TXT] = { "TXT", DNS_T_TXT, rd_txt },
	[DNS_K_NS] = { "NS", DNS_T_NS, rd_name },
	[DNS_K_SOA] = { "SOA", DNS_T_SOA, NULL },
};

int dns_kind_of(uint16_t type)
{
	for (int k = 0; k < DNS_K_COUNT; k++)
		if (kinds[k].type == type)
			return k;
	return -1;
}

/* Append one record to the node's set of kind k. */
static int rr_add(struct loader *ld, struct dns_node *n, int k, uint32_t ttl, const uint8_t *rd,
                  size_t rdlen)
{
	struct dns_rrset *set = n->set[k];
	char owner[300];

	name_print(n->name, owner, sizeof(owner));
	if (!set) {
		set = n->set[k] = calloc(1, sizeof(*set));
		if (!set)
			return DG_ENOMEM;
		set->type = kinds[k].type;
		set->ttl = ttl;
	} else if (set->ttl != ttl) {
		return fail(ld, "ttl", "%u differs from the %u of the other '%s' %s records", ttl,
		            set->ttl, owner, kinds[k].name);
	} else if (k == DNS_K_CNAME || k == DNS_K_SOA) {
		return fail(ld, NULL, "'%s' has more than one %s record", owner, kinds[k].name);
	}
	for (unsigned i = 0; i < set->n; i++)
		if (set->rr[i].rdlen == rdlen && !memcmp(set->rr[i].rdata, rd, rdlen))
			return fail(ld, "data", "duplicate '%s' %s record", owner, kinds[k].name);
	if (set->n == set->cap) {
		unsigned cap = set->cap ? set->cap * 2 : 2;
		struct dns_rr *rr = realloc(set->rr, cap * sizeof(*rr));
		if (!rr)
			return DG_ENOMEM;
		set->rr = rr;
		set->cap = cap;
	}
	struct dns_rr *rr = &set->rr[set->n];
	memset(rr, 0, sizeof(*rr));
	rr->rdata = malloc(rdlen ? rdlen : 1);
	if (!rr->rdata)
		return DG_ENOMEM;
	memcpy(rr->rdata, rd, rdlen);
	rr->rdlen = (uint16_t)rdlen;
	set->n++;
	return DG_OK;
}

static int ttl_get(struct loader *ld, const json_t *obj, const char *key, uint32_t def, uint32_t *ttl)
{
	json_t *v = json_object_get(obj, key);

	if (!v) {
		*ttl = def;
		return DG_OK;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > TTL_MAX)
		return fail(ld, key, "expected an integer from 0 to %d", TTL_MAX);
	*ttl = (uint32_t)json_integer_value(v);
	return DG_OK;
}

/* Only the keys in known (a NULL-terminated list) may appear in obj. */
static int keys_check(struct loader *ld, const json_t *obj, const char *const *known, const char *list)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		size_t i = 0;
		while (known[i] && strcmp(known[i], key))
			i++;
		if (!known[i])
			return fail(ld, key, "unknown key (known: %s)", list);
	}
	return DG_OK;
}

static int record_load(struct loader *ld, const json_t *r, uint32_t zone_ttl)
{
	static const char *const known[] = { "name", "type", "ttl", "data", NULL };
	json_t *name = json_object_get(r, "name"), *type = json_object_get(r, "type");
	uint8_t owner[DNS_NAME_MAX], *rd;
	size_t olen, rdlen = 0;
	uint32_t ttl;
	int k, rc;
	const char *why;

	if (!json_is_object(r))
		return fail(ld, NULL, "expected an object {\"name\", \"type\", \"data\", \"ttl\"}");
	if ((rc = keys_check(ld, r, known, "name, type, ttl, data")))
		return rc;
	if (!json_is_string(name))
		return fail(ld, "name", "expected a domain name (\"www\", \"@\", \"www.example.com.\")");
	if ((why = name_parse(json_string_value(name), ld->zone->apex->name, ld->zone->apex->len, owner, &olen)))
		return fail(ld, "name", "'%s': %s", json_string_value(name), why);
	if (!is_under(owner, olen, ld->zone->apex->name, ld->zone->apex->len))
		return fail(ld, "name", "'%s' is not inside the zone", json_string_value(name));
	for (k = 0; k < DNS_K_COUNT; k++)
		if (json_is_string(type) && !strcasecmp(json_string_value(type), kinds[k].name) && kinds[k].parse)
			break;
	if (k == DNS_K_COUNT)
		return fail(ld, "type", "expected one of A, AAAA, CNAME, MX, TXT, NS (SOA: the zone's \"soa\")");
	if (!json_object_get(r, "data"))
		return fail(ld, "data", "missing");
	if ((rc = ttl_get(ld, r, "ttl", zone_ttl, &ttl)))
		return rc;
	if (!(rd = malloc(65536)))
		return DG_ENOMEM;
	why = kinds[k].parse(ld, json_object_get(r, "data"), rd, &rdlen);
	if (why) {
		free(rd);
		return fail(ld, "data", "%s", why);
	}
	struct dns_node *n = node_get(ld, owner, olen);
	rc = n ? rr_add(ld, n, k, ttl, rd, rdlen) : DG_ENOMEM;
	free(rd);
	return rc;
}

static int soa_load(struct loader *ld, const json_t *soa, uint32_t zone_ttl)
{
	static const char *const known[] = { "mname", "rname", "serial", "refresh", "retry",
		                             "expire", "minimum", "ttl", NULL };
	static const char *const nums[] = { "serial", "refresh", "retry", "expire", "minimum" };
	uint8_t rd[2 * DNS_NAME_MAX + 20];
	size_t l1, l2;
	uint32_t ttl, v[5];
	const char *why;
	int rc;

	size_t plen = strlen(ld->path);
	snprintf(ld->path + plen, sizeof(ld->path) - plen, ".soa");
	if (!json_is_object(soa))
		return fail(ld, NULL, "expected an object {mname, rname, serial, refresh, retry, expire, minimum}");
	if ((rc = keys_check(ld, soa, known, "mname, rname, serial, refresh, retry, expire, minimum, ttl")))
		return rc;
	if ((why = rd_name(ld, json_object_get(soa, "mname"), rd, &l1)))
		return fail(ld, "mname", "%s", why);
	if ((why = rd_name(ld, json_object_get(soa, "rname"), rd + l1, &l2)))
		return fail(ld, "rname", "%s", why);
	for (size_t i = 0; i < 5; i++) {
		json_t *x = json_object_get(soa, nums[i]);
		if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 4294967295ll)
			return fail(ld, nums[i], "expected an integer from 0 to 4294967295");
		v[i] = (uint32_t)json_integer_value(x);
	}
	for (size_t i = 0, o = l1 + l2; i < 5; i++, o += 4) {
		rd[o] = (uint8_t)(v[i] >> 24);
		rd[o + 1] = (uint8_t)(v[i] >> 16);
		rd[o + 2] = (uint8_t)(v[i] >> 8);
		rd[o + 3] = (uint8_t)v[i];
	}
	if ((rc = ttl_get(ld, soa, "ttl", zone_ttl, &ttl)))
		return rc;
	ld->zone->neg_ttl = ttl < v[4] ? ttl : v[4];
	rc = rr_add(ld, ld->zone->apex, DNS_K_SOA, ttl, rd, l1 + l2 + 20);
	ld->path[plen] = 0;
	return rc;
}

/* The zone's origin: absolute (a final dot optional), not inside or
 * around another zone of the config. */
static int origin_load(struct loader *ld, const json_t *origin)
{
	uint8_t name[DNS_NAME_MAX];
	size_t len;
	const char *why;
	char other[300];

	if (!json_is_string(origin))
		return fail(ld, "origin", "expected a domain name (\"example.com.\")");
	if ((why = name_parse(json_string_value(origin), NULL, 0, name, &len)))
		return fail(ld, "origin", "'%s': %s", json_string_value(origin), why);
	for (struct dns_zone *z = ld->db->zones; z < ld->zone; z++) {
		const struct dns_node *a = z->apex;
		if (is_under(name, len, a->name, a->len) || is_under(a->name, a->len, name, len)) {
			name_print(a->name, other, sizeof(other));
			return fail(ld, "origin", "'%s' overlaps zones[%zu] '%s' (zones may not nest)",
			            json_string_value(origin), (size_t)(z - ld->db->zones), other);
		}
	}
	ld->zone->apex = node_get(ld, name, len);
	return ld->zone->apex ? DG_OK : DG_ENOMEM;
}

static int zone_load(struct loader *ld, const json_t *z)
{
	static const char *const known[] = { "origin", "ttl", "soa", "records", NULL };
	json_t *records = json_object_get(z, "records"), *r;
	uint32_t ttl;
	size_t i, plen = strlen(ld->path);
	int rc;

	if (!json_is_object(z))
		return fail(ld, NULL, "expected an object {\"origin\", \"soa\", \"records\"}");
	if ((rc = keys_check(ld, z, known, "origin, ttl, soa, records")) || (rc = origin_load(ld, json_object_get(z, "origin"))))
		return rc;
	if ((rc = ttl_get(ld, z, "ttl", DEFAULT_TTL, &ttl)))
		return rc;
	if (!json_object_get(z, "soa"))
		return fail(ld, "soa", "missing (every zone has one)");
	if ((rc = soa_load(ld, json_object_get(z, "soa"), ttl)))
		return rc;
	if (records && !json_is_array(records))
		return fail(ld, "records", "expected an array");
	json_array_foreach(records, i, r) {
		snprintf(ld->path + plen, sizeof(ld->path) - plen, ".records[%zu]", i);
		if ((rc = record_load(ld, r, ttl)))
			return rc;
	}
	ld->path[plen] = 0;
	return DG_OK;
}

static const uint8_t *rr_name(uint16_t type, const struct dns_rr *rr)
{
	return type == DNS_T_MX ? rr->rdata + 2 : rr->rdata;
}

/* After loading: CNAME exclusivity, delegations, and the targets of
 * CNAME, MX and NS records. */
static int db_link(struct loader *ld)
{
	static const int linked[] = { DNS_K_CNAME, DNS_K_MX, DNS_K_NS };
	char owner[300];

	for (size_t i = 0; i <= ld->db->mask; i++) {
		struct dns_node *n = ld->db->slot[i];
		if (!n)
			continue;
		const struct dns_node *apex = n->zone->apex;
		if (n->set[DNS_K_CNAME]) {
			for (int k = 0; k < DNS_K_COUNT; k++)
				if (k != DNS_K_CNAME && n->set[k]) {
					name_print(n->name, owner, sizeof(owner));
					snprintf(ld->err, ld->errlen, "config.zones[%zu]: '%s' has a CNAME and other data",
					         (size_t)(n->zone - ld->db->zones), owner);
					return DG_EINVAL;
				}
		}
		/* The topmost NS below the apex at or above n: the delegation
		 * that makes n the child zone's (a referral). */
		for (size_t o = 0; n->len - o > apex->len; o += n->name[o] + 1u) {
			struct dns_node *up = dns_db_find(ld->db, n->name + o, n->len - o);
			if (up && up->set[DNS_K_NS])
				n->cut = up;
		}
		for (size_t j = 0; j < sizeof(linked) / sizeof(linked[0]); j++) {
			struct dns_rrset *set = n->set[linked[j]];
			for (unsigned r = 0; set && r < set->n; r++) {
				const uint8_t *t = rr_name(set->type, &set->rr[r]);
				size_t tl = set->rr[r].rdlen - (size_t)(t - set->rr[r].rdata);
				struct dns_node *tn = dns_db_find(ld->db, t, tl);
				set->rr[r].in_zone = is_under(t, tl, apex->name, apex->len);
				set->rr[r].target = tn && tn->zone == n->zone ? tn : NULL;
			}
		}
	}
	return DG_OK;
}

void dns_db_free(struct dns_db *db)
{
	for (size_t i = 0; db->slot && i <= db->mask; i++) {
		struct dns_node *n = db->slot[i];
		if (!n)
			continue;
		for (int k = 0; k < DNS_K_COUNT; k++) {
			for (unsigned r = 0; n->set[k] && r < n->set[k]->n; r++)
				free(n->set[k]->rr[r].rdata);
			if (n->set[k])
				free(n->set[k]->rr);
			free(n->set[k]);
		}
		free(n);
	}
	free(db->slot);
	free(db->zones);
	memset(db, 0, sizeof(*db));
}

int dns_db_load(struct dns_db *db, const json_t *zones, char *err, size_t errlen)
{
	struct loader ld = { .db = db, .err = err, .errlen = errlen };
	json_t *z;
	size_t i;
	int rc = DG_OK;

	memset(db, 0, sizeof(*db));
	snprintf(ld.path, sizeof(ld.path), "zones");
	if (!json_is_array(zones) || !json_array_size(zones))
		return fail(&ld, NULL, "expected a non-empty array of zones");
	db->zones = calloc(json_array_size(zones), sizeof(*db->zones));
	if (!db->zones)
		return DG_ENOMEM;
	json_array_foreach(zones, i, z) {
		snprintf(ld.path, sizeof(ld.path), "zones[%zu]", i);
		ld.zone = &db->zones[i];
		db->nzones = i + 1;
		if ((rc = zone_load(&ld, z)))
			break;
	}
	if (!rc)
		rc = db_link(&ld);
	if (rc == DG_ENOMEM)
		snprintf(err, errlen, "config.%s: out of memory", ld.path);
	if (rc)
		dns_db_free(db);
	return rc;
}
