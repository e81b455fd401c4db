"""The operating system's confinement of the counter process.

Why: the counter holds camera frames, and it parses an untrusted stream with
FFmpeg. The record format (``record.py``) stops a careless change from
sending anything but counts; this module stops everything else, even code
that an attacker got to run inside the process. Applied once, at the start
of the counter process, before any thread exists (Landlock and seccomp bind
the calling thread and the threads it starts later):

* **limits**: no new privileges, not dumpable (no core dump, no ptrace or
  ``/proc/<pid>/mem`` by other processes of the same user), core size 0;
* **memory lock**: ``mlockall`` (current, future, on fault) when the memory-lock
  limit allows it, so frames are never written to swap on an SD card;
* **Landlock** (Linux ≥ 5.13): the whole file system read-only and nothing
  executable, except writing to ``/dev/null`` and to the configured V4L2
  device; from Landlock ABI 4 (Linux 6.7) TCP connect only to the camera's
  port and no TCP bind; from ABI 6 no abstract UNIX sockets or signals to
  processes outside the counter;
* **seccomp** (libseccomp): no ``execve``, no new processes (only threads), no
  sockets but TCP over IPv4/IPv6 (no UNIX, netlink, packet, UDP or raw), no
  bind, listen or accept, no ptrace, no namespaces or mounts.

Each layer the kernel or the system cannot provide is named in one WARNING;
``require=True`` (``LOKAALMETEN_REQUIRE_SANDBOX=1``) makes that an error.
Everything here is the standard library and ctypes; libseccomp is a shared
library present on Debian and Raspberry Pi OS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import resource
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
MEMLOCK_NEEDED = 2 << 30
"""A memory-lock limit below this (bytes) cannot hold a counter's frames and model."""

# Landlock (include/uapi/linux/landlock.h); the syscall numbers are the same on every
# architecture Linux added them for.
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
FS_EXECUTE, FS_WRITE_FILE = 1 << 0, 1 << 1
FS_CHANGES = sum(1 << bit for bit in range(4, 13))
"""REMOVE_DIR, REMOVE_FILE, MAKE_CHAR/DIR/REG/SOCK/FIFO/BLOCK/SYM."""
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

# seccomp via libseccomp (seccomp.h)
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_CTL_TSYNC = 4
SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_GT, SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ = 1, 2, 6, 4, 7
CLONE_THREAD = 0x00010000
SOCK_TYPE_MASK = 0xF


def _errno_action(code: int) -> int:
    return 0x00050000 | code


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    enforced: bool
    detail: str
    security: bool = True
    """False for hardening that no attacker needs to get past (the memory lock): its
    absence is warned about but never makes a required sandbox fail."""


@dataclass(frozen=True, slots=True)
class Confinement:
    """What holds in this process, layer by layer."""

    layers: tuple[Layer, ...]

    @property
    def missing(self) -> list[Layer]:
        return [layer for layer in self.layers if not layer.enforced]


class SandboxError(RuntimeError):
    """A confinement layer was required but could not be applied."""


def confine(camera_port: int | None, devices: Sequence[str] = (), *,
            require: bool = False) -> Confinement:
    """Confine this process; call before it starts any thread (see the module docstring).

    ``camera_port``: the TCP port of a network camera (None for a file or V4L2);
    ``devices``: device files it may open for writing (``/dev/video0``).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    seccomp = _libseccomp()  # before Landlock: finding a library may run a program
    layers = (_limits(libc), _memory_lock(libc), _landlock(libc, camera_port, devices),
              _seccomp(seccomp))
    result = Confinement(layers)
    if result.missing:
        text = "; ".join(f"{layer.name}: {layer.detail}" for layer in result.missing)
        if require and any(layer.security for layer in result.missing):
            raise SandboxError(f"counter confinement incomplete: {text}")
        log.warning("counter confinement incomplete (not enforced: %s)", text)
    log.info("counter confined: %s", ", ".join(
        f"{layer.name} ({layer.detail})" for layer in layers if layer.enforced))
    return result


def _limits(libc: ctypes.CDLL) -> Layer:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    failed = [name for name, option, value in (("no_new_privs", PR_SET_NO_NEW_PRIVS, 1),
                                                ("non-dumpable", PR_SET_DUMPABLE, 0))
              if libc.prctl(option, value, 0, 0, 0) != 0]
    if failed:
        return Layer("limits", False, f"prctl failed: {', '.join(failed)}")
    return Layer("limits", True, "no new privileges, not dumpable, no core")


def _memory_lock(libc: ctypes.CDLL) -> Layer:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft != resource.RLIM_INFINITY and soft < MEMLOCK_NEEDED:
        return Layer("memory lock", False, f"memory-lock limit {soft >> 20} MiB is too low to "
                     "lock frames out of swap (the unit sets LimitMEMLOCK=infinity)",
                     security=False)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0:
        return Layer("memory lock", False, f"mlockall: {os.strerror(ctypes.get_errno())}",
                     security=False)
    return Layer("memory lock", True, "frames never swapped", security=False)


def _landlock_abi(libc: ctypes.CDLL) -> int:
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                       ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(abi, 0)


def _landlock(libc: ctypes.CDLL, camera_port: int | None, devices: Sequence[str]) -> Layer:
    abi = _landlock_abi(libc)
    if abi < 1:
        return Layer("landlock", False, "not available in this kernel (Linux 5.13+)")
    fs = FS_EXECUTE | FS_WRITE_FILE | FS_CHANGES | (FS_REFER if abi >= 2 else 0) | \
        (FS_TRUNCATE if abi >= 3 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = (ctypes.c_uint64 * 3)(fs, net, scoped)
    size = 8 * (1 if abi < 4 else 2 if abi < 6 else 3)
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr),
                           ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return Layer("landlock", False, f"create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        for path in ("/dev/null", *devices):
            _allow_path(libc, ruleset, path, FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0))
        if net and camera_port is not None:
            rule = (ctypes.c_uint64 * 2)(NET_CONNECT_TCP, camera_port)
            if libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, RULE_NET_PORT, ctypes.byref(rule),
                            ctypes.c_uint32(0)) != 0:
                raise OSError(ctypes.get_errno(), "add_rule (port)")
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "restrict_self")
    except OSError as exc:
        return Layer("landlock", False, f"{exc.strerror or exc}: {exc.filename or ''}")
    finally:
        os.close(ruleset)
    detail = f"ABI {abi}: file system read-only"
    detail += f", TCP only to port {camera_port}" if net and camera_port else \
        ", no TCP" if net else " (network rules need ABI 4)"
    return Layer("landlock", True, detail + (", scoped" if scoped else ""))


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _allow_path(libc: ctypes.CDLL, ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # a device that is not plugged in: nothing to allow
    try:
        rule = _PathBeneath(access, fd)
        if libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule),
                        ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "add_rule", path)
    finally:
        os.close(fd)


class _ArgCmp(ctypes.Structure):
    _fields_ = (("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64))


def _libseccomp() -> ctypes.CDLL | None:
    """libseccomp by its soname (Debian, Raspberry Pi OS), else wherever ldconfig knows it.

    ``find_library`` runs a program, so it is only asked when the soname fails.
    """
    try:
        return ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        name = ctypes.util.find_library("seccomp")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


def _seccomp(lib: ctypes.CDLL | None) -> Layer:
    if lib is None:
        return Layer("seccomp", False, "libseccomp is not installed (apt install libseccomp2)")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_rule_add_array.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp))
    ctx = lib.seccomp_init(ctypes.c_uint32(SCMP_ACT_ALLOW))
    if not ctx:
        return Layer("seccomp", False, "seccomp_init failed")
    ctx = ctypes.c_void_p(ctx)
    try:
        lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, ctypes.c_uint32(1))
        for syscall, action, comparisons in _seccomp_rules():
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number < 0:
                continue  # not on this architecture (e.g. fork on arm64)
            array = (_ArgCmp * max(1, len(comparisons)))(*comparisons)
            rc = lib.seccomp_rule_add_array(ctx, ctypes.c_uint32(action), number,
                                            len(comparisons), array)
            if rc < 0:
                return Layer("seccomp", False, f"rule for {syscall}: {os.strerror(-rc)}")
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            return Layer("seccomp", False, f"load: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)
    return Layer("seccomp", True, "no exec, no processes, TCP sockets only")


def _seccomp_rules() -> list[tuple[str, int, list[_ArgCmp]]]:
    """(syscall, action, argument comparisons ANDed) for everything the counter may not do."""
    deny = _errno_action(errno.EPERM)
    rules: list[tuple[str, int, list[_ArgCmp]]] = [
        (name, deny, []) for name in (
            "execve", "execveat", "fork", "vfork", "socketpair", "bind", "listen", "accept",
            "accept4", "ptrace", "process_vm_readv", "process_vm_writev", "unshare",
            "setns", "mount", "umount2", "pivot_root", "chroot", "kexec_load")]
    # A clone without CLONE_THREAD is a new process; clone3 hides its flags in memory,
    # so it answers "not implemented" and the C library falls back to clone.
    rules.append(("clone", deny, [_ArgCmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0)]))
    rules.append(("clone3", _errno_action(errno.ENOSYS), []))
    # Sockets: IPv4 or IPv6 (domain 2 or 10) and a stream, nothing else.
    inet, inet6 = socket.AF_INET.value, socket.AF_INET6.value
    rules.append(("socket", deny, [_ArgCmp(0, SCMP_CMP_LT, inet, 0)]))
    rules.append(("socket", deny, [_ArgCmp(0, SCMP_CMP_GT, inet6, 0)]))
    rules += [("socket", deny, [_ArgCmp(0, SCMP_CMP_EQ, domain, 0)])
              for domain in range(inet + 1, inet6)]
    rules += [("socket", deny, [_ArgCmp(1, SCMP_CMP_MASKED_EQ, SOCK_TYPE_MASK, kind)])
              for kind in (socket.SOCK_DGRAM.value, socket.SOCK_RAW.value)]
    return rules


DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class CameraEndpoint:
    """What a confined counter still needs to reach, and the source to read it by."""

    source: str
    """The configured source, a URL's host replaced by the address it resolved to."""
    port: int | None
    devices: tuple[str, ...]


def pin_camera(source: str) -> CameraEndpoint:
    """Resolve a network camera's host now: a confined counter cannot ask DNS (UDP).

    Raises OSError when the host does not resolve (the supervisor retries later).
    """
    spec = source.strip()
    if spec.isdigit():
        return CameraEndpoint(spec, None, (f"/dev/video{spec}",))
    if spec.startswith("/dev/video"):
        return CameraEndpoint(spec, None, (spec,))
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.hostname is None:
        return CameraEndpoint(spec, None, ())
    port = parts.port or DEFAULT_PORTS[scheme]
    family, *_, address = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)[0]
    host = address[0] if family == socket.AF_INET else f"[{address[0]}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return CameraEndpoint(urlunsplit(parts._replace(netloc=netloc)), port, ())
