"""Attacks on the sandbox, tried from a build step, a function and `imagewright shell`: each
asserts that the attack fails inside and that the host is untouched.

The probe below runs inside containers (the image's own Python). It tries what a malicious
package could: write a host sysctl, use the kernel keyring, sniff the loopback, bind a
privileged host port, make a user namespace, call bpf and perf_event_open, and push keystrokes
into a terminal with TIOCSTI. It prints one JSON object: each attempt, "refused" or "ALLOWED".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

import imagewright as modal
from imagewright.cli.loader import load_module
from imagewright.exception import ImageBuildError
from imagewright.execute.builder import build_image
from imagewright.execute.sandbox import spawn_host_tool
from imagewright.store.store import Store

from .conftest import Recorder, cli

PROBE = r"""
import ctypes, errno, fcntl, json, os, platform, pty, socket, termios
libc = ctypes.CDLL(None, use_errno=True)
NUMBERS = {"x86_64": {"keyctl": 250, "bpf": 321, "perf_event_open": 298},
           "aarch64": {"keyctl": 219, "bpf": 280, "perf_event_open": 241}}[platform.machine()]
REFUSED = (errno.EPERM, errno.EACCES, errno.EROFS, errno.EIO, errno.ENOENT)  # ENOENT: masked
results = {}

def syscall(name, *args):
    if libc.syscall(NUMBERS[name], *args) < 0:
        raise OSError(ctypes.get_errno(), name)

def core_pattern():
    with open("/proc/sys/kernel/core_pattern", "w") as f:
        f.write("|/bin/false")

def sysrq():
    with open("/proc/sysrq-trigger", "w") as f:
        f.write("")

def keyring():  # KEYCTL_GET_KEYRING_ID of the session keyring, creating it
    syscall("keyctl", 0, -3, 1)

def packet_socket():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()

def privileged_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 987))
    finally:
        s.close()

def user_namespace():
    if libc.unshare(0x10000000) != 0:
        raise OSError(ctypes.get_errno(), "unshare")

def bpf():
    syscall("bpf", 0, 0, 0)

def perf_event_open():
    syscall("perf_event_open", 0, 0, -1, -1, 0)

def tiocsti():  # on a terminal of our own, as its controlling process
    master, slave = pty.openpty()
    name = os.ttyname(slave)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fd = os.open(name, os.O_RDWR)
        try:
            fcntl.ioctl(fd, termios.TIOCSTI, b"x")
            os._exit(0)
        except OSError as exc:
            os._exit(100 + exc.errno)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status != 0:
        raise OSError(status - 100, "TIOCSTI")

for attempt in (core_pattern, sysrq, keyring, packet_socket, privileged_port, user_namespace,
                bpf, perf_event_open, tiocsti):
    try:
        attempt()
        results[attempt.__name__] = "ALLOWED"
    except OSError as exc:
        results[attempt.__name__] = "refused" if exc.errno in REFUSED else f"errno {exc.errno}"
print("PROBE " + json.dumps(results, sort_keys=True))
"""

ATTEMPTS = {
    "core_pattern", "sysrq", "keyring", "packet_socket", "privileged_port", "user_namespace",
    "bpf", "perf_event_open", "tiocsti",
}  # fmt: skip


def _probe_results(output: str) -> dict[str, str]:
    line = next(line for line in output.splitlines() if line.startswith("PROBE "))
    return json.loads(line[len("PROBE ") :])


def _assert_all_refused(output: str) -> None:
    results = _probe_results(output)
    assert set(results) == ATTEMPTS
    assert results == dict.fromkeys(ATTEMPTS, "refused"), results


@pytest.fixture
def host_state():
    """The host settings the probe attacks; asserts afterwards that none changed."""
    core_pattern = Path("/proc/sys/kernel/core_pattern")
    before = core_pattern.read_text()
    yield
    after = core_pattern.read_text()
    if after != before:
        core_pattern.write_text(before)  # put the host back before failing
    assert after == before


def test_build_step_cannot_reach_the_host(builder, fresh, tmp_path, host_state):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    image = fresh.add_local_file(probe, "/probe.py", copy=True).run_commands("python /probe.py")
    _, recorder = builder.build(image)
    _assert_all_refused("\n".join(recorder.lines))


def test_function_and_shell_cannot_reach_the_host(tmp_path, store, host_state):
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import subprocess
            import imagewright as modal

            image = modal.Image.debian_slim(python_version="3.11").add_local_file(
                "probe.py", "/probe.py", copy=True
            )
            app = modal.App("escape", image=image)


            @app.function()
            def probe():
                return subprocess.run(
                    ["python", "/probe.py"], capture_output=True, text=True
                ).stdout
            """
        )
    )
    proc = cli("run", "app.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _assert_all_refused(proc.stdout)
    proc = cli("shell", "app.py", "--cmd", "python /probe.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _assert_all_refused(proc.stdout)


NSS_PLANT = r"""
cat > /tmp/evil.c <<'EOF'
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
__attribute__((constructor)) static void planted(void) {
    /* runs wherever libc loads this: leave a mark, then try to leave the chroot */
    close(open("/nss-ran", O_CREAT | O_WRONLY, 0644));
    mkdir("/.escape", 0755);
    if (chroot("/.escape") == 0) {
        for (int i = 0; i < 64; i++) chdir("..");
        chroot(".");
    }
    close(open("MARKER", O_CREAT | O_WRONLY, 0644));
}
EOF
gcc -shared -fPIC -o /usr/lib/x86_64-linux-gnu/libnss_evil.so.2 /tmp/evil.c
printf 'passwd: evil files\ngroup: evil files\n' > /etc/nsswitch.conf
mkdir -p /app && echo payload > /app/data.txt && chown 1234:1234 /app/data.txt
"""


def test_copy_from_never_runs_code_from_the_image_on_the_host(builder, tmp_path):
    # the source stage plants an NSS module that a user-name lookup by the copy would load
    marker = tmp_path / f"nss-escaped-{os.getpid()}"
    (tmp_path / "plant.sh").write_text(NSS_PLANT.replace("MARKER", str(marker)))
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11-slim-bookworm AS evil\n"
        "COPY plant.sh /plant.sh\n"
        "RUN sh /plant.sh\n"
        "FROM python:3.11-slim-bookworm\n"
        "COPY --from=evil /app /app\n"
    )
    image = modal.Image.from_dockerfile(tmp_path / "Dockerfile", context_dir=tmp_path)
    out = builder.run(image, "cat /app/data.txt; stat -c %u:%g /app/data.txt")
    assert out.splitlines() == ["payload", "1234:1234"]
    assert not marker.exists()


def test_secrets_stay_out_of_argv_and_multiline_values_stay_out_of_logs(builder, fresh, store):
    value = f"tok-{os.getpid()}-{time.time_ns()}"
    pem = f"-----BEGIN KEY {os.getpid()}-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC{os.getpid()}\n-----END KEY-----"
    image = fresh.run_commands(
        "sleep 3; echo step-done",
        'echo "$PEM_KEY"; exit 3',
        secrets=[modal.Secret.from_dict({"API_TOKEN": value, "PEM_KEY": pem})],
    )
    seen_in_argv: list[str] = []

    def watch() -> None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        cmdline = Path(entry.path, "cmdline").read_bytes()
                    except OSError:
                        continue
                    if value.encode() in cmdline or b"MIIEvQ" in cmdline:
                        seen_in_argv.append(cmdline.decode(errors="replace"))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with pytest.raises(ImageBuildError) as failure:
        builder.build(image)
    watcher.join()
    assert not seen_in_argv
    message = str(failure.value)
    for line in pem.splitlines():
        assert line not in message
    log = Path(failure.value.log_path).read_text()
    assert "***" in log
    for line in pem.splitlines():
        assert line not in log


ATTACKER = """
import imagewright as modal

image = modal.Image.debian_slim(python_version="3.11").env({"ATTACKER": "TAG"}).run_commands(
    "uv pip install --system six",
    # rewrite every cached copy of six.py (uv keeps unpacked wheels in its cache)
    "find $UV_CACHE_DIR -name six.py -exec sh -c 'for f; do echo POISONED = True >> $f; done' _ {} +",
    "find $UV_CACHE_DIR -name six.py -exec grep -l POISONED {} + | grep -q . && echo cache-rewritten",
)
"""


def test_one_image_cannot_poison_another_through_the_package_caches(builder, fresh, tmp_path):
    # the attacker's image comes from another definition file, as another project's would
    tag = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:8]
    (tmp_path / "attacker.py").write_text(ATTACKER.replace("TAG", tag))
    attacker = load_module(str(tmp_path / "attacker.py")).image
    _, recorder = builder.build(attacker)
    assert "cache-rewritten" in recorder.lines
    victim = fresh.uv_pip_install("six")
    out = builder.run(victim, 'python -c \'import six; print(getattr(six, "POISONED", "clean"))\'')
    assert out.strip() == "clean"


def test_copies_of_a_directory_and_of_a_symlinked_file(builder, fresh, tmp_path):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "a.txt").write_text("a")
    os.symlink(tmp_path / "ctx" / "a.txt", tmp_path / "link.txt")
    image = fresh.add_local_dir(tmp_path / "ctx", "/ctx", copy=True).add_local_file(
        tmp_path / "link.txt", "/linked.txt", copy=True
    )
    # a symlink named directly is copied as its target (it used to fail with ELOOP)
    out = builder.run(image, "cat /ctx/a.txt /linked.txt; test -L /linked.txt || echo -n file")
    assert out == "aafile"


def test_base_bootstraps_run_in_a_sandbox_too(tmp_path, host_state):
    # mmdebstrap runs the maintainer scripts of the packages it installs: it gets the same walls
    out = tmp_path / "out"
    out.mkdir()
    script = (
        "readlink /proc/self/ns/user; ls /home 2>&1; test -e /root/.cache || echo no-root-cache; "
        "echo '|/bin/false' > /proc/sys/kernel/core_pattern || echo sysctl-refused; "
        "touch $OUT/made && echo made"
    )
    env = {"PATH": "/usr/bin:/bin", "OUT": str(out)}
    proc = spawn_host_tool(["/bin/sh", "-c", script], [str(out)], [], env)
    output = proc.communicate()[0].decode()
    assert proc.returncode == 0, output
    assert os.readlink("/proc/self/ns/user") not in output  # a user namespace of its own
    # only the interpreter's own prefix of the host's home directories is there
    assert "ls: cannot access '/home'" in output and "no-root-cache" in output
    assert "sysctl-refused" in output and "made" in output
    assert (out / "made").exists()


def test_other_local_users_cannot_reach_what_steps_wrote(tmp_path):
    # a layer may hold a set-user-ID root program: only root may reach the store, wherever it is
    outside = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        outside.chmod(0o755)  # any local user may look in here
        store = Store(outside / "store")
        program = tmp_path / "suid"
        program.write_text("#!/bin/sh\n")
        program.chmod(0o4755)
        image = modal.Image.from_scratch().add_local_file(program, "/suid", copy=True)
        result = build_image(image, store=store, reporter=Recorder())
        copied = store.layer_dir(result.plan.key) / "diff" / "suid"
        assert copied.stat().st_mode & 0o4000
        probe = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "stat", str(copied)],
            capture_output=True,
            text=True,
        )
        assert probe.returncode != 0 and "Permission denied" in probe.stderr
    finally:
        shutil.rmtree(outside)
