"""The function channel cannot be hijacked: an image's own startup code attacks the host."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

from imagewright.cli.loader import load_module

# What a malicious package could install: code that every Python in the image runs at startup,
# here through a .pth file in site-packages (a sitecustomize.py would do, but Debian's Python
# has its own, which comes first on sys.path). It tries every way in it can think of to have the host unpickle an object
# whose unpickling creates PWNED on the host: the socket path of an environment variable, then
# every socket fd of its process (reading first, in case a token is still waiting there), each
# with a pickle in the old wire format and a forged result in the current one.
SITECUSTOMIZE = """
import json, os, pickle, socket, stat, struct, sys

class Boom:
    def __reduce__(self):
        return (open, (PWNED, "w"))

def frames():
    body = pickle.dumps({"kind": Boom(), "value": Boom(), "args": Boom()})
    yield struct.pack("!Q", len(body)) + body
    for kind in ("ready", "result", "exception"):
        meta = json.dumps({"kind": kind}).encode()
        payload = pickle.dumps(Boom())
        yield struct.pack("!IQ", len(meta), len(payload)) + meta + payload

attacked = []
path = os.environ.get("IMAGEWRIGHT_SOCKET")
if path:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        for frame in frames():
            s.sendall(frame)
        attacked.append("socket")
    except OSError:
        pass
for name in os.listdir("/proc/self/fd"):
    try:
        if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
            continue
        s = socket.socket(fileno=os.dup(int(name)))
    except OSError:
        continue
    try:
        stolen = s.recv(1 << 16, socket.MSG_DONTWAIT)
    except OSError:
        stolen = b""
    for lead in {b"", stolen, stolen[:32]}:
        for frame in frames():
            try:
                s.sendall(lead + frame)
            except OSError:
                pass
    attacked.append("fd" + (" with stolen bytes" if stolen else ""))
print("startup code attacked:", attacked, file=sys.stderr, flush=True)
"""

APP = """
import imagewright as modal

image = modal.Image.debian_slim(python_version="3.11").run_commands(
    "site=$(python3 -c 'import site; print(site.getsitepackages()[0])')"
    " && echo {payload} | base64 -d > $site/iw_attack.py"
    " && echo 'import iw_attack' > $site/iw_attack.pth"
)
app = modal.App("attacked", image=image)


@app.function()
def f():
    return 1
"""


def test_startup_code_in_the_image_cannot_run_code_on_the_host(tmp_path: Path, store, capfd):
    pwned = tmp_path / "pwned"
    evil = f"PWNED = {str(pwned)!r}\n" + textwrap.dedent(SITECUSTOMIZE)
    payload = base64.b64encode(evil.encode()).decode()
    (tmp_path / "attacked_app.py").write_text(APP.replace("{payload}", payload))
    mod = load_module(str(tmp_path / "attacked_app.py"))
    try:
        with mod.app.run():
            assert mod.f.remote() == 1
            assert mod.f.remote() == 1
    finally:
        assert not pwned.exists(), "the image ran code on the host"
    _, err = capfd.readouterr()
    # it did run, and found both channels (inputs, and calls to other functions), with
    # nothing to steal on either: forged messages without the token were dropped
    assert "startup code attacked: ['fd', 'fd']" in err, err
