"""vmcg integration test bed: real QEMU guests driven from Python.

Standard library only. See tests/integration/README.md.
"""

from .guest import (
    Guest,
    GuestCommandError,
    GuestError,
    GuestTimeout,
    GuestUnavailable,
    QMPClient,
    QMPError,
    ensure_guest_built,
    kvm_usable,
    probe_accel,
    connect_unix,
    qemu_binary,
    start_qemu_machine_none,
    wait_for,
)
from . import tap  # noqa: E402 - the TAP runner every test file uses

__all__ = [
    "Guest",
    "GuestCommandError",
    "GuestError",
    "GuestTimeout",
    "GuestUnavailable",
    "QMPClient",
    "QMPError",
    "ensure_guest_built",
    "kvm_usable",
    "probe_accel",
    "connect_unix",
    "qemu_binary",
    "start_qemu_machine_none",
    "tap",
    "wait_for",
]
