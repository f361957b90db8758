/* Loading handler plugins and codec modules from shared objects. */
#ifndef DG_LOADER_H
#define DG_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include <dgramd/plugin.h>

/* One loaded plugin file. desc is a copy of the plugin's descriptor in the
 * server's layout (desc.size is the server's): callbacks beyond the plugin's
 * own struct size are NULL, and desc.options is options, the plugin's table copied into the server's
 * struct dg_option (desc.option_size is its size). */
struct dg_module {
	char *path;
	void *dl;
	struct dg_plugin desc;
	struct dg_option *options; /* owned; NULL if the plugin declares none */
	struct dg_module *next;
};

/* A loaded codec module (its layers are in the codec registry). */
struct dg_codec_dl {
	void *dl;
	struct dg_codec_dl *next;
};

/* The set of plugins loaded for one config. */
struct dg_loader {
	struct dg_module *mods;
	struct dg_codec_dl *codecs;
};

/* Resolve a handler name to a file: a value with a '/' is a path (relative
 * to conf_dir), anything else is plugin_dir/NAME.so. */
void dg_plugin_path(const char *plugin, const char *plugin_dir, const char *conf_dir,
                    char *buf, size_t len);

/* A plugin name (no '/') that names no file: the name of a plugin in
 * plugin_dir at most two edits away from it, into out. false if none. */
bool dg_plugin_suggest(const char *plugin, const char *plugin_dir, char *out, size_t len);

/* Load (or find, if already loaded) the plugin at path and check it. On
 * error write "plugin 'PATH': problem" into err and return a negative
 * dg_rc. *out stays owned by the loader until dg_loader_release(). */
int dg_loader_load(struct dg_loader *ld, const char *path, const struct dg_plugin **out,
                   char *err, size_t errlen);

/* Use a descriptor linked into the program (the test harness) as if it
 * were loaded from a file: the same checks (the symbol size unknown),
 * named "(linked NAME)" in errors. Errors as for dg_loader_load. */
int dg_loader_adopt(struct dg_loader *ld, const struct dg_plugin *p, const struct dg_plugin **out,
                    char *err, size_t errlen);

/* Load a codec module (exporting DG_CODEC_SYMBOL) and register its layers.
 * Errors as for dg_loader_load ("codec module 'PATH': ..."). */
int dg_loader_load_codec(struct dg_loader *ld, const char *path, char *err, size_t errlen);

/* Make the codec registry hold exactly ld's codec layers again (after
 * another config's were registered or released: the registry is
 * process-wide). */
void dg_loader_register_codecs(const struct dg_loader *ld);

/* dlclose everything; registered codec layers are forgotten. */
void dg_loader_release(struct dg_loader *ld);

#endif
