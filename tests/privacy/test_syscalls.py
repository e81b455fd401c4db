"""The strace reader the privacy tests rely on, on hand-written traces (no strace needed)."""

from __future__ import annotations

from pathlib import Path

from tests.privacy.syscalls import Allowed, Trace, violations

SPAWN = ('execve("/usr/bin/python3", ["python3", "-c", "from multiprocessing.spawn import '
         'spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)", "--multiprocessing-fork"], '
         '0x7ff /* 30 vars */) = 0')


def parse(tmp_path: Path, text: str) -> Trace:
    path = tmp_path / "trace.txt"
    path.write_text(text)
    return Trace.parse(path)


def test_a_child_seen_before_its_clone_returns_keeps_its_exec_and_calls(tmp_path: Path) -> None:
    trace = parse(tmp_path, f"""\
100 clone(child_stack=NULL, flags=CLONE_VM|CLONE_VFORK|SIGCHLD <unfinished ...>
200 {SPAWN}
200 openat(AT_FDCWD, "/tmp/x.png", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3
100 <... clone resumed>) = 200
201 write(2, "early thread line", 17) = 17
200 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM) = 201
201 openat(AT_FDCWD, "/dev/shm/sem.x", O_RDWR|O_CREAT, 0600) = 4
""")
    (counter,) = trace.counters()
    assert counter.pid == 200 and counter.parent == 100
    problems = violations(counter, Allowed())
    assert any("/tmp/x.png" in p for p in problems), "the child's own calls are kept"
    assert any("/dev/shm/sem.x" in p for p in problems), "its thread's calls count as its own"
    assert any(c.args.startswith("2, ") for c in counter.calls), "calls of the thread " \
        "logged before its clone returned belong to the process"


def test_unfinished_calls_are_stitched_and_camera_traffic_allowed(tmp_path: Path) -> None:
    trace = parse(tmp_path, f"""\
300 {SPAWN}
300 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 5
300 connect(5, {{sa_family=AF_INET, sin_port=htons(8554), \
sin_addr=inet_addr("127.0.0.1")}}, 16 <unfinished ...>
300 <... connect resumed>) = 0
300 sendto(5, "GET /stream", 11, 0, NULL, 0) = 11
300 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_IP) = 6
300 write(9, "{'x' * 5000}", 5000) = 5000
""")
    (counter,) = trace.counters()
    problems = violations(counter, Allowed(camera=("127.0.0.1", 8554)))
    assert not any("connect" in p or "fd 5" in p for p in problems), problems
    assert any("SOCK_DGRAM" in p for p in problems), "UDP is never the camera"
    assert any("write of 5000 bytes on fd 9" in p for p in problems)
