/* The server configuration: one JSON file (with # and // line comments),
 * validated completely before anything binds. */
#ifndef DG_CONF_H
#define DG_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <jansson.h>

#include "acl.h"
#include "addr.h"
#include "loader.h"
#include "throttle.h"

#define DG_LISTENER_NAME_MAX 64

struct dg_listener_conf {
	char *name;           /* [A-Za-z0-9_.-], 1 to DG_LISTENER_NAME_MAX */
	struct dg_addr *binds;
	unsigned n_binds;
	json_t *codec;        /* codec spec (reference held) */
	char *plugin;         /* handler.plugin: a name or a path */
	json_t *plugin_config; /* handler.config or NULL (reference held) */
	json_t *plugin_shown;  /* handler.config for -T: every option the plugin declares,
	                        * defaults filled in; set by the check (dg_server_init with
	                        * check_only) while the plugin is loaded; NULL: as given */
	json_t *allow_spec, *deny_spec; /* "allow", "deny" as given, for -T (references held) */
	unsigned max_datagram; /* bytes; larger datagrams are dropped */
	unsigned send_queue;   /* replies queued when the socket is full */
	int rcvbuf, sndbuf;    /* 0: kernel default */
	bool ordering;         /* "ordering": "peer" (true) or "none" */
	unsigned peer_queue;   /* datagrams waiting per busy peer */
	unsigned peer_concurrency; /* requests of one peer in progress at once (ordering "peer") */
	unsigned drop_policy;  /* enum dg_drop_policy */
	unsigned queue_bytes;  /* bytes waiting in all peer queues */
	unsigned max_peers;
	unsigned max_unvalidated_peers; /* sessions of peers not validated; 0: max_peers */
	unsigned session_idle_ms;
	unsigned handler_timeout_ms; /* 0: none */
	unsigned amp_factor;   /* amplification.factor: reply bytes per byte received
	                        * from an unvalidated peer; 0: no guard */
	unsigned max_replies;  /* max_replies_per_request */
	struct dg_acl acl;     /* "allow", "deny" (built) */
	struct dg_throttle_conf rate_limit;
};

struct dg_config {
	char *path;           /* the file it was read from */
	char *dir;            /* its directory, for relative plugin paths */
	int log_level;
	char *log_target;     /* "syslog" or a file path; NULL: stderr */
	char *log_syslog_socket; /* NULL: /dev/log */
	char *plugin_dir;     /* NULL: the built-in default */
	unsigned max_pending; /* requests in progress at once, per worker */
	unsigned workers;     /* worker processes (under one master) */
	unsigned shutdown_timeout_ms;
	unsigned reload_conversations; /* per worker: conversations a reload hands over
	                                  on sockets of their own; 0: cancelled instead */
	size_t memory_budget; /* bytes: requests in progress and queued datagrams, per worker */
	char *user, *group;   /* drop to these once bound (NULL: stay) */
	bool metrics;         /* "metrics": {"bind": ...} given */
	struct dg_addr metrics_bind;
	struct dg_listener_conf *listeners;
	unsigned n_listeners;
	struct dg_loader codec_modules; /* loaded from "codec_modules" */
	json_t *codec_module_names;     /* "codec_modules" as given (reference held) */
};

/* Defaults, documented in conf/dgramd.json and dgramd.conf(5). */
#define DG_DEFAULT_MAX_DATAGRAM 65507
#define DG_DEFAULT_SEND_QUEUE 1024
#define DG_DEFAULT_MAX_PENDING 65536
#define DG_DEFAULT_SHUTDOWN_MS 5000
#define DG_DEFAULT_RELOAD_CONVERSATIONS 256
#define DG_DEFAULT_MEMORY_BUDGET ((size_t)64 << 20)
#define DG_DEFAULT_PEER_QUEUE 16
#define DG_DEFAULT_PEER_CONCURRENCY 1
#define DG_DEFAULT_QUEUE_BYTES (16u << 20)
#define DG_DEFAULT_MAX_PEERS 65536
#define DG_DEFAULT_IDLE_MS 60000
#define DG_DEFAULT_HANDLER_TIMEOUT_MS 10000
#define DG_DEFAULT_AMP_FACTOR 3 /* as QUIC (RFC 9000, section 8) */
#define DG_DEFAULT_MAX_REPLIES 64

/* Read and validate a config file. On error return a negative dg_rc and
 * write "FILE: line L, column C: ..." or "FILE: KEY.PATH: ..." into err.
 * Codec modules named in "codec_modules" are loaded (and registered) here,
 * since the listeners' codec specs may name their layers; bare module names
 * are looked up in plugin_dir (the config's own "plugin_dir" wins).
 * *out is owned by the caller (dg_config_free).
 *
 * The codec registry is process-wide and holds the codec modules of one
 * config, the active one: a config loaded here becomes active (another
 * config's modules leave the registry first); dg_config_use makes an older
 * one active again; dg_config_free of the active config leaves no config's
 * modules registered, of another keeps the active one's. Nothing outside
 * conf.c resets or fills the registry. */
int dg_config_load(const char *path, const char *plugin_dir, struct dg_config **out,
                   char *err, size_t errlen);

/* The same from memory; name is used in messages, dir for relative paths. */
int dg_config_parse(const char *text, size_t len, const char *name, const char *dir,
                    const char *plugin_dir, struct dg_config **out, char *err, size_t errlen);

void dg_config_free(struct dg_config *cfg);

/* Make cfg the active config of the codec registry (see dg_config_load):
 * a master whose reload failed goes back to the serving config's. */
void dg_config_use(const struct dg_config *cfg);

/* Forget what a check pass filled in for -T (plugin_shown): a config that
 * is served does not carry it into the workers, which _exit without
 * freeing their copy of the config. */
void dg_config_drop_shown(struct dg_config *cfg);

/* The effective config: every key with its value, defaults filled in (what
 * dgramd -T prints). A new reference, or NULL with the reason in err. */
json_t *dg_config_dump(const struct dg_config *cfg, char *err, size_t errlen);

/* Blank out # and // comments outside strings, in place, keeping every
 * newline so that line and column numbers stay true. */
void dg_config_strip_comments(char *text, size_t len);

/* Log one warning for each listener bound to an address other than
 * loopback with nothing against spoofed or abusive traffic (no ACL, no
 * rate limit, no amplification guard). */
void dg_config_warn_unprotected(const struct dg_config *cfg);

#endif
