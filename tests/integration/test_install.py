#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What `meson install` puts on a host (README.md, "Run it on your host").

The build's own install, into a temporary DESTDIR (`meson install
--destdir DIR --no-rebuild`), read against the build's options (`meson
introspect --buildoptions`: prefix, bindir, sbindir, sysconfdir, datadir,
mandir, systemdsystemunitdir), so that it holds for any prefix:
- vmcgd and vmcgctl, and the installed vmcgd runs;
- SYSCONFDIR/vmcg/vmcgd.conf, the shipped config, which the installed vmcgd
  accepts and also embeds; an edited one is kept by a later install;
- vmcgd.service in the unit directory, its ExecStart the installed vmcgd
  with the installed config, its RuntimeDirectory and StateDirectory those
  of vmcgd's default socket and state paths, and `systemd-analyze verify`
  clean on it (Documentation= included: MANPATH is the installed pages);
- vmcgd.8 and vmcgctl.1, made by docs/md2man.py, rendered by groff with no
  warning;
- the libvirt domain example, with vmcg's metadata, the balloon with
  statistics and the pressure channel (and valid to libvirt's schema);
- every docs/*.md;
- every file meson says it installs.
No root, no guests. Prints TAP.
"""

import configparser
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from vmcgtest import tap

REPO_ROOT = Path(__file__).resolve().parents[2]
VMCGD = os.environ.get("VMCGD") or str(REPO_ROOT / "build" / "daemon" / "vmcgd")
VMCG_NS = "urn:vmcg:domain:1"


class Install:
    """The build directory, its options and one install of it (setup())."""

    build = None
    options = {}
    destdir = None  # the TemporaryDirectory
    root = None  # its Path


def build_dir():
    """MESON_BUILD_ROOT if set, else the build that made $VMCGD (BUILD/daemon/vmcgd)."""
    d = os.environ.get("MESON_BUILD_ROOT")
    d = Path(d) if d else Path(VMCGD).resolve().parents[1]
    if not (d / "meson-private").is_dir():
        raise AssertionError("%s is not a meson build directory (set MESON_BUILD_ROOT or VMCGD)"
                             % d)
    return d


def meson():
    m = shutil.which("meson")
    if not m:
        raise AssertionError("no meson on PATH: it built this tree, so it should be there")
    return m


def meson_install(destdir):
    r = subprocess.run([meson(), "install", "-C", str(Install.build), "--destdir", str(destdir),
                        "--no-rebuild"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, "meson install failed:\n" + r.stdout + r.stderr


def opt(name):
    return Install.options[name]


def installed_path(*parts):
    """The absolute path on the host: prefix joined with a (maybe relative) dir option."""
    return os.path.join(opt("prefix"), *parts)


def in_destdir(path):
    return Install.root / str(path).lstrip("/")


def unit_dir():
    """Where config/meson.build puts the unit, by the same rule."""
    d = opt("systemdsystemunitdir")
    if d:
        return d
    r = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
                       capture_output=True, text=True) if shutil.which("pkg-config") else None
    if r is not None and r.returncode == 0 and r.stdout.strip():
        return r.stdout.strip()
    return installed_path("lib", "systemd", "system")


def unit():
    """The installed unit, parsed: {section: {key: value}} (no key given twice in it)."""
    path = in_destdir(os.path.join(unit_dir(), "vmcgd.service"))
    assert path.is_file(), "no unit at %s" % path
    cp = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    cp.optionxform = str  # keys are case-sensitive
    cp.read_string(path.read_text())
    return path, cp


def test_binaries():
    vmcgd = in_destdir(installed_path(opt("sbindir"), "vmcgd"))
    vmcgctl = in_destdir(installed_path(opt("bindir"), "vmcgctl"))
    for p in (vmcgd, vmcgctl):
        assert p.is_file() and os.access(p, os.X_OK), "%s: not installed, or not executable" % p
    r = subprocess.run([str(vmcgd), "--print-default-config"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (REPO_ROOT / "config" / "vmcgd.conf").read_text(), \
        "the installed vmcgd embeds another config than config/vmcgd.conf"
    r = subprocess.run([str(vmcgctl), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "tree" in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr)


def test_config():
    conf = in_destdir(installed_path(opt("sysconfdir"), "vmcg", "vmcgd.conf"))
    assert conf.is_file(), "no config at %s" % conf
    assert filecmp.cmp(conf, REPO_ROOT / "config" / "vmcgd.conf", shallow=False)
    assert oct(conf.stat().st_mode & 0o777) == "0o644", oct(conf.stat().st_mode)
    assert not Path(str(conf) + ".new").exists(), "a .new beside a config just installed"
    vmcgd = in_destdir(installed_path(opt("sbindir"), "vmcgd"))
    r = subprocess.run([str(vmcgd), "--check-config", "-c", str(conf)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "%s: OK (0 groups, 0 VMs)" % conf, r.stdout


def test_config_kept():
    """An administrator's vmcgd.conf survives `meson install` (an upgrade)."""
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / installed_path(opt("sysconfdir"), "vmcg", "vmcgd.conf").lstrip("/")
        conf.parent.mkdir(parents=True)
        edited = "[group /tenants]\nmemory.max = 4G\n"
        conf.write_text(edited)
        meson_install(d)
        assert conf.read_text() == edited, "meson install overwrote an edited config"
        new = Path(str(conf) + ".new")
        assert filecmp.cmp(new, REPO_ROOT / "config" / "vmcgd.conf", shallow=False), \
            "the shipped config is not beside the kept one as .new"


def test_unit():
    path, cp = unit()
    svc = cp["Service"]
    vmcgd = installed_path(opt("sbindir"), "vmcgd")
    conf = installed_path(opt("sysconfdir"), "vmcg", "vmcgd.conf")
    assert svc["ExecStart"] == "%s -c %s" % (vmcgd, conf), svc["ExecStart"]
    assert in_destdir(vmcgd).is_file(), "ExecStart's %s is not what was installed" % vmcgd
    assert "@" not in path.read_text(), "an unsubstituted @VARIABLE@ in the unit"
    assert cp["Unit"]["Documentation"].split()[0] == "man:vmcgd(8)"
    assert cp["Install"]["WantedBy"] == "multi-user.target"
    # The directories systemd makes for vmcgd are those of its defaults.
    defaults = {}
    for line in (REPO_ROOT / "config" / "vmcgd.conf").read_text().splitlines():
        if line.startswith("#") and " = " in line:
            k, v = line[1:].split(" = ", 1)
            defaults.setdefault(k.strip(), v.strip())
    for key in ("socket", "hooks-socket"):
        assert os.path.dirname(defaults[key]) == "/run/" + svc["RuntimeDirectory"], \
            (key, defaults[key], svc["RuntimeDirectory"])
    assert os.path.dirname(defaults["state"]) == "/var/lib/" + svc["StateDirectory"], \
        (defaults["state"], svc["StateDirectory"])
    # QEMUs keep sockets in /run/vmcg: a vmcgd restart must not remove it.
    assert svc["RuntimeDirectoryPreserve"] == "yes"
    # vmcgd writes /sys/fs/cgroup (the backstop): nothing may make it read-only.
    for key in ("ProtectKernelTunables", "ProtectControlGroups"):
        assert svc.get(key, "no") == "no", "%s would break the backstop" % key
    assert svc.get("PrivateTmp", "no") == "no", "QMP sockets in /tmp must stay reachable"
    assert svc.get("ProtectHome", "no") in ("no", "read-only"), \
        "QMP sockets under /home must stay reachable"


def test_unit_verify():
    sa = shutil.which("systemd-analyze")
    if not sa:
        raise tap.Skip("no systemd-analyze (Debian: package systemd; scripts/install-deps.sh)")
    path, cp = unit()
    vmcgd = installed_path(opt("sbindir"), "vmcgd")
    conf = installed_path(opt("sysconfdir"), "vmcg", "vmcgd.conf")
    with tempfile.TemporaryDirectory() as d:
        # verify wants ExecStart's binary to exist: the installed one, in DESTDIR.
        text = path.read_text().replace("ExecStart=%s -c %s" % (vmcgd, conf), "ExecStart=%s -c %s"
                                        % (in_destdir(vmcgd), in_destdir(conf)))
        assert str(Install.root) in text
        copy = Path(d) / "vmcgd.service"
        copy.write_text(text)
        # Documentation=man:... is checked with man(1): against the installed pages.
        env = dict(os.environ, MANPATH=str(in_destdir(installed_path(opt("mandir")))))
        r = subprocess.run([sa, "verify", str(copy)], capture_output=True, text=True, env=env,
                           timeout=120, cwd=d)
        # It exits 0 even for a directive it ignores: any message is a failure.
        assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), \
            "systemd-analyze verify (exit %d):\n%s%s" % (r.returncode, r.stdout, r.stderr)


def test_man_pages():
    for name, section in (("vmcgd", "8"), ("vmcgctl", "1")):
        page = in_destdir(installed_path(opt("mandir"), "man" + section, "%s.%s" % (name, section)))
        assert page.is_file(), "no man page at %s" % page
        assert filecmp.cmp(page, Install.build / "docs" / page.name, shallow=False)
        text = page.read_text(encoding="ascii")  # md2man.py writes ASCII only
        assert text.splitlines()[1].startswith('.TH "%s" "%s"' % (name.upper(), section)), \
            text.splitlines()[:2]
    groff = shutil.which("groff")
    if not groff:
        raise tap.Skip("installed; not rendered: no groff (Debian: package groff-base)")
    for name, section in (("vmcgd", "8"), ("vmcgctl", "1")):
        page = in_destdir(installed_path(opt("mandir"), "man" + section, "%s.%s" % (name, section)))
        # -P-cbou: plain text, no bold or underline by overstriking.
        r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-P-cbou", str(page)],
                           capture_output=True,
                           timeout=60, env=dict(os.environ, LC_ALL="C.UTF-8"))
        assert r.returncode == 0 and not r.stderr, "groff: " + r.stderr.decode()
        out = r.stdout.decode("utf-8")
        assert "%s - " % name in out, "no NAME line in the rendered %s" % page.name
        # Options render with ASCII hyphens, so they can be copied.
        assert " --socket" in out, "--socket is not rendered as typed"
        if shutil.which("man"):
            r = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True,
                               timeout=60, env=dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80",
                                                    MAN_KEEP_FORMATTING="0"))
            assert r.returncode == 0 and not r.stderr, "man -l: " + r.stderr.decode()


def test_libvirt_example():
    path = in_destdir(installed_path(opt("datadir"), "doc", "vmcg", "examples",
                                     "libvirt-domain.xml"))
    assert path.is_file(), "no example at %s" % path
    dom = ET.parse(path).getroot()
    assert dom.tag == "domain" and dom.get("type") == "kvm"
    mem = dom.find("memory")
    assert (mem.get("unit"), mem.text) == ("GiB", "1"), (mem.get("unit"), mem.text)
    vm = dom.find("metadata/{%s}vm" % VMCG_NS)
    assert vm is not None, "no vmcg:vm in <metadata>"
    got = {child.tag.split("}")[1]: child.text for child in vm}
    assert got == {"group": "/tenants/acme/web", "floor": "256M", "oom-priority": "0"}, got
    balloon = dom.find("devices/memballoon")
    assert balloon.get("model") == "virtio" and balloon.find("stats").get("period") == "5"
    ch = dom.find("devices/channel")
    assert ch.get("type") == "unix"
    assert ch.find("source").attrib == {"mode": "bind", "path": "/run/vmcg/channels/web1.sock"}
    assert ch.find("target").attrib == {"type": "virtio", "name": "org.vmcg.pressure.0"}
    # min_guarantee is shown, commented out: libvirt's QEMU driver refuses it.
    assert dom.find("memtune") is None and "min_guarantee" in path.read_text()
    validate = shutil.which("virt-xml-validate")
    if not validate:
        tap.diag("no virt-xml-validate (libvirt-clients): not checked against libvirt's schema")
        return
    r = subprocess.run([validate, str(path), "domain"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_docs():
    docdir = in_destdir(installed_path(opt("datadir"), "doc", "vmcg"))
    docs = sorted((REPO_ROOT / "docs").glob("*.md"))
    assert docs
    for md in docs:
        assert filecmp.cmp(md, docdir / md.name, shallow=False), \
            "%s is not installed (docs/meson.build's list)" % md.name


def test_everything_installed():
    with open(Install.build / "meson-info" / "intro-installed.json") as f:
        installed = json.load(f)
    missing = [dst for dst in installed.values() if not in_destdir(dst).exists()]
    assert not missing, "meson lists these, but they are not in DESTDIR: %s" % missing


TESTS = [
    ("binaries", test_binaries),
    ("config", test_config),
    ("config-kept", test_config_kept),
    ("unit", test_unit),
    ("unit-verify", test_unit_verify),
    ("man-pages", test_man_pages),
    ("libvirt-example", test_libvirt_example),
    ("docs", test_docs),
    ("everything-installed", test_everything_installed),
]


def setup():
    Install.build = build_dir()
    r = subprocess.run([meson(), "introspect", "--buildoptions", str(Install.build)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    Install.options = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    tap.diag("build %s, prefix %s, sysconfdir %s, unit directory %s" % (
        Install.build, opt("prefix"), opt("sysconfdir"), unit_dir()))
    Install.destdir = tempfile.TemporaryDirectory(prefix="vmcg-install-")
    Install.root = Path(Install.destdir.name)
    meson_install(Install.root)


def cleanup():
    if Install.destdir is not None:
        Install.destdir.cleanup()


if __name__ == "__main__":
    sys.exit(tap.main(TESTS, setup=setup, cleanup=cleanup))
