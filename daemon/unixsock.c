// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <gio/gunixsocketaddress.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unixsock.h"

static gboolean socket_is_live(const char *path, GSocketType type, GError **error)
{
	g_autoptr(GSocket) sock = NULL;
	g_autoptr(GSocketAddress) addr = NULL;
	g_autoptr(GError) local = NULL;

	sock = g_socket_new(G_SOCKET_FAMILY_UNIX, type, G_SOCKET_PROTOCOL_DEFAULT, error);
	if (!sock)
		return TRUE;
	addr = g_unix_socket_address_new(path);
	if (g_socket_connect(sock, addr, NULL, &local)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
			    "%s: another daemon is listening there", path);
		return TRUE;
	}
	if (g_error_matches(local, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
		return FALSE;
	g_propagate_prefixed_error(error, g_steal_pointer(&local), "%s: ", path);
	return TRUE;
}

gboolean vmcg_unix_socket_prepare(const char *path, GSocketType type, GError **error)
{
	g_autofree char *dir = g_path_get_dirname(path);
	struct stat st;

	if (!g_file_test(dir, G_FILE_TEST_EXISTS)) {
		if (g_mkdir_with_parents(dir, 0755) < 0 || chmod(dir, 0755) < 0) {
			int err = errno;

			g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
				    "cannot create %s: %s", dir, g_strerror(err));
			return FALSE;
		}
	}
	if (lstat(path, &st) < 0) {
		int err = errno;

		if (err == ENOENT)
			return TRUE;
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "%s: %s", path,
			    g_strerror(err));
		return FALSE;
	}
	if (!S_ISSOCK(st.st_mode)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
			    "%s exists and is not a socket: not removing it", path);
		return FALSE;
	}
	if (socket_is_live(path, type, error))
		return FALSE;
	g_info("removing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT) {
		int err = errno;

		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
			    "cannot remove stale socket %s: %s", path, g_strerror(err));
		return FALSE;
	}
	return TRUE;
}

void vmcg_unix_socket_unlink_own(const char *path, dev_t dev, ino_t ino)
{
	struct stat st;

	if (stat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino)
		(void)unlink(path);
}
