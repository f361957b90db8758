#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

int dg_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len;

	if (!path || !*path)
		return 0;
	len = strlen(path);
	/* An absolute path, or '@' for Linux's abstract namespace. */
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sun.sun_path)) {
		dg_log(DG_LOG_WARN, "NOTIFY_SOCKET '%s' is not a socket path; not notifying", path);
		return -1;
	}
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		dg_log(DG_LOG_WARN, "cannot notify '%s': socket: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun,
	                   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	int err = errno;
	close(fd);
	if (n < 0) {
		dg_log(DG_LOG_WARN, "cannot notify '%s': %s", path, strerror(err));
		return -1;
	}
	return 0;
}
