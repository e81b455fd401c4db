"""The strace reader the privacy tests rely on, on hand-written traces (no strace needed)."""

from __future__ import annotations

from pathlib import Path

from tests.privacy.syscalls import Allowed, Trace, violations, zygote_violations

ZYGOTE = ('execve("/proc/self/exe", ["/usr/bin/python3", "-m", "agent.vision.zygote", '
          '"agent.vision.child:run_counter", "7", "44"], 0x7ff /* 30 vars */) = 0')
FORK = "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, " \
       "child_tidptr=0x7f) = {child}"


def parse(tmp_path: Path, text: str) -> Trace:
    path = tmp_path / "trace.txt"
    path.write_text(text)
    return Trace.parse(path)


def test_a_counter_seen_before_its_fork_returns_keeps_its_calls(tmp_path: Path) -> None:
    trace = parse(tmp_path, f"""\
100 clone(child_stack=NULL, flags=CLONE_VM|CLONE_VFORK|SIGCHLD <unfinished ...>
150 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
150 {ZYGOTE}
100 <... clone resumed>) = 150
150 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD <unfinished ...>
200 openat(AT_FDCWD, "/tmp/x.png", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3
150 <... clone resumed>, child_tidptr=0x7f) = 200
201 write(2, "early thread line", 17) = 17
200 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM) = 201
201 openat(AT_FDCWD, "/dev/shm/sem.x", O_RDWR|O_CREAT, 0600) = 4
""")
    (zygote,) = trace.zygotes()
    assert zygote.pid == 150 and zygote.parent == 100
    assert zygote_violations(zygote) == [], "forking is the zygote's job; the calls before " \
        "its exec were the daemon's launcher"
    (counter,) = trace.counters()
    assert counter.pid == 200 and counter.parent == 150
    problems = violations(counter, Allowed())
    assert any("/tmp/x.png" in p for p in problems), "the child's own calls are kept"
    assert any("/dev/shm/sem.x" in p for p in problems), "its thread's calls count as its own"
    assert any(c.args.startswith("2, ") for c in counter.calls), "calls of the thread " \
        "logged before its clone returned belong to the process"


def test_unfinished_calls_are_stitched_and_camera_traffic_allowed(tmp_path: Path) -> None:
    trace = parse(tmp_path, f"""\
150 {ZYGOTE}
150 {FORK.format(child=300)}
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


def test_a_counter_that_runs_a_program_is_caught_even_though_it_never_exec_d_before(
        tmp_path: Path) -> None:
    trace = parse(tmp_path, f"""\
150 {ZYGOTE}
150 {FORK.format(child=400)}
400 openat(AT_FDCWD, "/tmp/lm-frames.raw", O_WRONLY|O_CREAT|O_APPEND, 0666) = 3
400 execve("/bin/true", ["true"], 0x7ff /* 30 vars */) = 0
""")
    (counter,) = trace.counters()
    problems = violations(counter, Allowed())
    assert any(p.startswith("execve(") for p in problems), problems
    assert any("/tmp/lm-frames.raw" in p for p in problems), "what it did before stays"


def test_the_zygote_may_fork_and_talk_but_never_load_counter_code_or_open_sockets(
        tmp_path: Path) -> None:
    trace = parse(tmp_path, f"""\
150 {ZYGOTE}
150 openat(AT_FDCWD, "/opt/lm/agent/vision/__pycache__/zygote.cpython-311.pyc", O_RDONLY) = 3
150 openat(AT_FDCWD, "/opt/lm/agent/vision/privileges.py", O_RDONLY|O_CLOEXEC) = 3
150 openat(AT_FDCWD, "/v/site-packages/cv2/../../lib64/libpython3.11.so", O_RDONLY) = -1 ENOENT
150 sendmsg(3, {{msg_name=NULL, msg_iov=[{{iov_base="{{\\"pid\\": 500}}", iov_len=12}}]}}, 0) = 12
150 {FORK.format(child=500)}
150 openat(AT_FDCWD, "/opt/lm/agent/vision/__pycache__/pipeline.cpython-311.pyc", O_RDONLY) = 4
150 openat(AT_FDCWD, "/opt/lm/.venv/lib/python3.11/site-packages/cv2/__init__.py", O_RDONLY) = 4
150 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_IP) = 5
150 openat(AT_FDCWD, "/tmp/lm-x", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 6
150 execve("/bin/sh", ["sh"], 0x7ff /* 30 vars */) = 0
""")
    (zygote,) = trace.zygotes()
    assert [c.name for c in trace.counters()[0].calls] == []
    problems = zygote_violations(zygote)
    assert [p.split(":")[0].split("(")[0] for p in problems] == [
        "loaded '/opt/lm/agent/vision/__pycache__/pipeline.cpython-311.pyc'",
        "loaded '/opt/lm/.venv/lib/python3.11/site-packages/cv2/__init__.py'",
        "socket", "opened for writing", "execve"], problems
