/* Plugins are checked field by field before the first call: the exported
 * symbol's size (from the ELF symbol table), magic, ABI major and minor,
 * the descriptor's own size, name, required callbacks and (ABI 1.1) the
 * option table, read into the server's layout first (ABI 1.3: its entries
 * are dg_plugin.option_size bytes apart). */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "directive.h"
#include "loader.h"
#include "log.h"
#include "options.h"

/* The descriptor up to and including on_packet: what ABI 1.0 requires. */
#define DG_PLUGIN_MIN_SIZE (offsetof(struct dg_plugin, on_packet) + sizeof(void *))

void dg_plugin_path(const char *plugin, const char *plugin_dir, const char *conf_dir,
                    char *buf, size_t len)
{
	if (strchr(plugin, '/'))
		snprintf(buf, len, "%s%s%s", plugin[0] == '/' ? "" : conf_dir,
		         plugin[0] == '/' ? "" : "/", plugin);
	else
		snprintf(buf, len, "%s/%s.so", plugin_dir, plugin);
}

bool dg_plugin_suggest(const char *plugin, const char *plugin_dir, char *out, size_t len)
{
	unsigned best = 3; /* at most 2 edits away */
	struct dirent *e;
	DIR *d;

	if (strchr(plugin, '/') || !(d = opendir(plugin_dir)))
		return false;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char name[64];
		if (n < 4 || n - 3 >= sizeof(name) || strcmp(e->d_name + n - 3, ".so"))
			continue;
		memcpy(name, e->d_name, n - 3);
		name[n - 3] = '\0';
		unsigned dist = dg_edit_distance(plugin, name);
		if (dist < best) {
			best = dist;
			snprintf(out, len, "%s", name);
		}
	}
	closedir(d);
	return best < 3;
}

/* How many bytes the symbol occupies, or 0 if the ELF table does not say. */
static size_t symbol_size(const void *sym)
{
	Dl_info info;
	const ElfW(Sym) *es = NULL;

	if (!dladdr1(sym, &info, (void **)&es, RTLD_DL_SYMENT) || !es)
		return 0;
	return es->st_size;
}

__attribute__((format(printf, 5, 6)))
static int refuse_as(const char *what, char *err, size_t errlen, const char *path,
                     const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s '%s': %s", what, path, msg);
	return DG_EINVAL;
}

#define refuse(err, errlen, path, ...) refuse_as("plugin", err, errlen, path, __VA_ARGS__)

/* stat + dlopen with the errors every module kind shares. */
static void *open_module(const char *what, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		refuse_as(what, err, errlen, path, "%s", strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		refuse_as(what, err, errlen, path, "not a regular file");
		return NULL;
	}
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		refuse_as(what, err, errlen, path, "cannot load: %s", dlerror());
	dlerror();
	return dl;
}

static int check(const struct dg_plugin *p, size_t symsize, const char *path,
                 char *err, size_t errlen)
{
	if (symsize && symsize < offsetof(struct dg_plugin, name))
		return refuse(err, errlen, path, "symbol '%s' is %zu bytes, too small for a plugin header",
		              DG_PLUGIN_SYMBOL, symsize);
	if (p->magic != DG_PLUGIN_MAGIC)
		return refuse(err, errlen, path, "wrong magic 0x%08x (expected 0x%08x): not a dgramd plugin",
		              (unsigned)p->magic, (unsigned)DG_PLUGIN_MAGIC);
	if (p->abi_major != DG_PLUGIN_ABI_MAJOR)
		return refuse(err, errlen, path, "built for plugin ABI %u.%u, this dgramd provides ABI %u.%u "
		              "(major versions differ): rebuild it against this dgramd",
		              p->abi_major, p->abi_minor, DG_PLUGIN_ABI_MAJOR, DG_PLUGIN_ABI_MINOR);
	if (p->abi_minor > DG_PLUGIN_ABI_MINOR)
		return refuse(err, errlen, path, "built for plugin ABI %u.%u, newer than this dgramd's %u.%u",
		              p->abi_major, p->abi_minor, DG_PLUGIN_ABI_MAJOR, DG_PLUGIN_ABI_MINOR);
	if (p->size < DG_PLUGIN_MIN_SIZE)
		return refuse(err, errlen, path, "descriptor is %u bytes, ABI %u.0 needs at least %zu",
		              (unsigned)p->size, DG_PLUGIN_ABI_MAJOR, DG_PLUGIN_MIN_SIZE);
	if (symsize && symsize < p->size)
		return refuse(err, errlen, path, "descriptor says %u bytes but symbol '%s' is only %zu",
		              (unsigned)p->size, DG_PLUGIN_SYMBOL, symsize);
	if (!p->name || !p->name[0])
		return refuse(err, errlen, path, "descriptor has no name");
	if (!p->on_packet)
		return refuse(err, errlen, path, "descriptor has no on_packet callback");
	return DG_OK;
}

/* A new module for the checked descriptor p: its copy in the server's
 * layout, with the option table copied into it (dg_options_import) and
 * checked. NULL with err filled. */
static struct dg_module *module_new(const struct dg_plugin *p, const char *path,
                                    char *err, size_t errlen)
{
	struct dg_option *table;
	size_t osize;
	char msg[512];
	struct dg_module *m = NULL;

	int rc = dg_options_import(p, &table, &osize, msg, sizeof(msg));
	if (!rc && table)
		rc = dg_options_check(table, osize, msg, sizeof(msg));
	if (rc) {
		refuse(err, errlen, path, "%s", msg);
		goto out_table;
	}
	if (!(m = calloc(1, sizeof(*m))) || !(m->path = strdup(path))) {
		refuse(err, errlen, path, "out of memory");
		goto out_module;
	}
	memcpy(&m->desc, p, p->size < sizeof(m->desc) ? p->size : sizeof(m->desc));
	/* From here on desc is a whole descriptor of this server's ABI: what
	 * the plugin's lacked reads NULL, its table is the server's copy. */
	m->desc.size = sizeof(m->desc);
	m->options = table;
	m->desc.options = table;
	m->desc.option_size = sizeof(struct dg_option);
	return m;

out_module:
	free(m);
out_table:
	free(table);
	return NULL;
}

int dg_loader_load(struct dg_loader *ld, const char *path, const struct dg_plugin **out,
                   char *err, size_t errlen)
{
	for (struct dg_module *m = ld->mods; m; m = m->next)
		if (!strcmp(m->path, path)) {
			*out = &m->desc;
			return DG_OK;
		}
	void *dl = open_module("plugin", path, err, errlen);
	if (!dl)
		return DG_EINVAL;
	const struct dg_plugin *p = dlsym(dl, DG_PLUGIN_SYMBOL);
	if (!p) {
		refuse(err, errlen, path, "no symbol '%s': not a dgramd plugin (or not exported)",
		       DG_PLUGIN_SYMBOL);
		goto out_close;
	}
	if (check(p, symbol_size(p), path, err, errlen))
		goto out_close;
	for (struct dg_module *m = ld->mods; m; m = m->next)
		if (!strcmp(m->desc.name, p->name)) {
			refuse(err, errlen, path, "plugin name '%s' is already taken by '%s'", p->name, m->path);
			goto out_close;
		}
	struct dg_module *m = module_new(p, path, err, errlen);
	if (!m)
		goto out_close;
	m->dl = dl;
	m->next = ld->mods;
	ld->mods = m;
	*out = &m->desc;
	return DG_OK;

out_close:
	dlclose(dl);
	return DG_EINVAL;
}

int dg_loader_adopt(struct dg_loader *ld, const struct dg_plugin *p, const struct dg_plugin **out,
                    char *err, size_t errlen)
{
	char path[300];

	snprintf(path, sizeof(path), "(linked %s)", p && p->name ? p->name : "plugin");
	for (struct dg_module *m = ld->mods; m; m = m->next)
		if (!m->dl && !strcmp(m->path, path)) {
			*out = &m->desc;
			return DG_OK;
		}
	if (!p)
		return refuse(err, errlen, path, "no descriptor");
	if (check(p, 0, path, err, errlen))
		return DG_EINVAL;
	struct dg_module *m = module_new(p, path, err, errlen);
	if (!m)
		return DG_EINVAL;
	m->next = ld->mods;
	ld->mods = m;
	*out = &m->desc;
	return DG_OK;
}

int dg_loader_load_codec(struct dg_loader *ld, const char *path, char *err, size_t errlen)
{
	char msg[300];

	void *dl = open_module("codec module", path, err, errlen);
	if (!dl)
		return DG_EINVAL;
	const struct dg_codec_module *m = dlsym(dl, DG_CODEC_SYMBOL);
	size_t symsize = m ? symbol_size(m) : 0;
	/* Allocated before the layers are registered: once they are, the
	 * module is recorded, so that dg_loader_release() forgets them. */
	struct dg_codec_dl *c = calloc(1, sizeof(*c));
	int rc = DG_EINVAL;
	if (!m)
		refuse_as("codec module", err, errlen, path, "no symbol '%s': not a dgramd codec module",
		          DG_CODEC_SYMBOL);
	else if (symsize && symsize < sizeof(*m))
		refuse_as("codec module", err, errlen, path, "symbol '%s' is %zu bytes, expected %zu",
		          DG_CODEC_SYMBOL, symsize, sizeof(*m));
	else if (!c) {
		refuse_as("codec module", err, errlen, path, "out of memory");
		rc = DG_ENOMEM;
	} else if (dg_codec_register(m, msg, sizeof(msg)))
		refuse_as("codec module", err, errlen, path, "%s", msg);
	else {
		c->dl = dl;
		c->next = ld->codecs;
		ld->codecs = c;
		return DG_OK;
	}
	free(c);
	dlclose(dl);
	return rc;
}

void dg_loader_register_codecs(const struct dg_loader *ld)
{
	char msg[300];
	unsigned n = 0;

	dg_codec_registry_reset();
	for (const struct dg_codec_dl *c = ld->codecs; c; c = c->next)
		n++;
	/* The list is newest first; register in load order. */
	while (n--) {
		const struct dg_codec_dl *c = ld->codecs;
		for (unsigned i = 0; i < n; i++)
			c = c->next;
		const struct dg_codec_module *m = dlsym(c->dl, DG_CODEC_SYMBOL);
		if (m && dg_codec_register(m, msg, sizeof(msg)))
			dg_log(DG_LOG_ERROR, "codec module: %s", msg);
	}
}

void dg_loader_release(struct dg_loader *ld)
{
	struct dg_module *m = ld->mods, *next;

	for (; m; m = next) {
		next = m->next;
		if (m->dl)
			dlclose(m->dl);
		free(m->path);
		free(m->options);
		free(m);
	}
	ld->mods = NULL;
	if (ld->codecs)
		dg_codec_registry_reset();
	for (struct dg_codec_dl *c = ld->codecs, *n; c; c = n) {
		n = c->next;
		dlclose(c->dl);
		free(c);
	}
	ld->codecs = NULL;
}
