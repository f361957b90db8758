/* Dropping root: after the sockets are bound and the plugins initialised,
 * a worker switches to the configured user and group for good. */
#ifndef DG_PRIVS_H
#define DG_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

/* Resolve user (and group; NULL: the user's primary group) to ids. On
 * error write "no such user 'x'" (or group) into err and return -1. */
int dg_privs_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid,
                    char *err, size_t errlen);

/* Become user:group (supplementary groups: just that group), and check
 * that root cannot be regained. DG_OK, or DG_ERROR after logging why. */
int dg_privs_drop(const char *user, const char *group);

#endif
