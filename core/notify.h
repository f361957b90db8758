/* systemd's service readiness protocol (sd_notify) without libsystemd: one
 * datagram to the AF_UNIX socket named by $NOTIFY_SOCKET, as systemd's
 * Type=notify expects ("READY=1", "RELOADING=1", "STOPPING=1"). Without
 * $NOTIFY_SOCKET nothing is sent. */
#ifndef DG_NOTIFY_H
#define DG_NOTIFY_H

/* Send state (newline-separated VAR=value assignments). Returns 0 when
 * sent or when there is no notify socket, -1 (logged) on failure. */
int dg_notify(const char *state);

#endif
