/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The socket files vmcgd serves on (the API's, the hooks'). */
#ifndef VMCG_DAEMON_UNIXSOCK_H
#define VMCG_DAEMON_UNIXSOCK_H

#include <gio/gio.h>
#include <sys/types.h>

/**
 * vmcg_unix_socket_prepare() - make @path ready to bind: create its
 * directory (0755), and remove a stale socket file there (one nobody
 * listens on, probed with a socket of @type). A live one (another daemon)
 * or a file that is not a socket is an error, and is left alone.
 */
gboolean vmcg_unix_socket_prepare(const char *path, GSocketType type, GError **error);

/** Remove @path only if it is still the file we bound (@dev, @ino). */
void vmcg_unix_socket_unlink_own(const char *path, dev_t dev, ino_t ino);

#endif
