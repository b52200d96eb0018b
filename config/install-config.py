#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""meson install: put vmcgd.conf in place unless one is already there.

Usage (meson.add_install_script): install-config.py SOURCE DIR

Not install_data(), which overwrites: `meson install` again (an upgrade)
would replace an administrator's edited config with the shipped one, which
sets nothing, and vmcgd would then remove the groups and VMs the old file
had created (config-merge.h: a section gone from the file removes what it
made). An existing file is kept, and the shipped one is put beside it as
vmcgd.conf.new to compare, as dpkg does with a changed conffile. DIR is
absolute, without DESTDIR; meson passes DESTDIR in the environment.
"""

import filecmp
import os
import shutil
import sys


def destdir_join(destdir, path):
    # As meson's own: DESTDIR is prepended to the absolute path.
    return destdir + path if destdir else path


def main(argv):
    if len(argv) != 3:
        print("usage: install-config.py SOURCE DIR", file=sys.stderr)
        return 2
    source, directory = argv[1], argv[2]
    if os.environ.get("MESON_INSTALL_DRY_RUN"):
        return 0
    directory = destdir_join(os.environ.get("DESTDIR", ""), directory)
    target = os.path.join(directory, os.path.basename(source))
    os.makedirs(directory, exist_ok=True)
    if not os.path.exists(target):
        shutil.copyfile(source, target)
        os.chmod(target, 0o644)
        print("Installing %s to %s" % (source, target))
    elif filecmp.cmp(source, target, shallow=False):
        print("Keeping %s (the same as the shipped one)" % target)
    else:
        shutil.copyfile(source, target + ".new")
        os.chmod(target + ".new", 0o644)
        print("Keeping %s (it differs from the shipped one, which is now %s.new)" %
              (target, target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
