#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <dgramd/codec.h>

#include "log.h"
#include "privs.h"

int dg_privs_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid,
                    char *err, size_t errlen)
{
	char buf[4096];
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &pwp);

	if (rc || !pwp) {
		snprintf(err, errlen, "no such user '%s'%s%s", user, rc ? ": " : "", rc ? strerror(rc) : "");
		return -1;
	}
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	if (!group)
		return 0;
	rc = getgrnam_r(group, &gr, buf, sizeof(buf), &grp);
	if (rc || !grp) {
		snprintf(err, errlen, "no such group '%s'%s%s", group, rc ? ": " : "", rc ? strerror(rc) : "");
		return -1;
	}
	*gid = gr.gr_gid;
	return 0;
}

int dg_privs_drop(const char *user, const char *group)
{
	char err[256];
	uid_t uid;
	gid_t gid;

	if (dg_privs_lookup(user, group, &uid, &gid, err, sizeof(err))) {
		dg_log(DG_LOG_ERROR, "cannot drop privileges: %s", err);
		return DG_ERROR;
	}
	/* A credential change clears the parent-death signal (a worker's
	 * "stop with the master"): keep it. */
	int pdeath = 0;
	prctl(PR_GET_PDEATHSIG, &pdeath);
	/* Groups first: once the user id changes, they cannot be. */
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		dg_log(DG_LOG_ERROR, "cannot switch to user '%s' (uid %ld, gid %ld): %s", user,
		       (long)uid, (long)gid, strerror(errno));
		return DG_ERROR;
	}
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		dg_log(DG_LOG_ERROR, "switched to user '%s' but root could be regained", user);
		return DG_ERROR;
	}
	if (pdeath && prctl(PR_SET_PDEATHSIG, pdeath) < 0)
		dg_log(DG_LOG_WARN, "cannot keep the parent-death signal: %s", strerror(errno));
	dg_log(DG_LOG_INFO, "running as user '%s' (uid %ld, gid %ld)", user, (long)uid, (long)gid);
	return DG_OK;
}
