"""`imagewright build --explain` over real builds: it names the copied file that changed (and
blames the steps after it on their parent), the argument that changed, or nothing at all, and
then builds."""

from __future__ import annotations

import json
import textwrap
import time

from .conftest import cli

APP = textwrap.dedent("""
    import imagewright as modal
    image = (
        modal.Image.debian_slim(python_version="3.11")
        .copy_local_file("data.txt", "/app/data.txt")
        .run_commands("cp /app/data.txt /app/seen && echo {word}")
        .env({{"DONE": "1"}})
    )
""")


def test_explain_names_what_changed(tmp_path, store):
    app, data = tmp_path / "app.py", tmp_path / "data.txt"
    app.write_text(APP.format(word="alpha"))
    data.write_text(f"first {time.time_ns()}\n")  # new to the store even when it is reused
    proc = cli("build", "app.py", "--explain", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "3 of 5 steps rebuild:", proc.stdout  # the base is the session's
    assert lines[1].startswith("  step 3 copy_local_file('data.txt', '/app/data.txt') at app.py:")
    assert all(line.endswith(": no earlier build of this definition") for line in lines[1:])

    proc = cli("build", "app.py", "--explain", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "All 5 steps are cached.\n"), proc.stderr

    data.write_text(f"second {time.time_ns()}\n")
    proc = cli("build", "app.py", "--explain", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "3 of 5 steps rebuild:", proc.stdout
    assert ": file /app/data.txt (from data.txt) changed (sha256 " in lines[1]
    assert lines[2].startswith("  step 4 run_commands('cp /app/data.txt /app/seen && echo alpha')")
    assert lines[2].endswith(": parent step 3 changed")
    assert lines[3].startswith("  step 5 env({'DONE': '1'}) at app.py:")
    assert lines[3].endswith(": parent step 4 changed")
    proc = cli("shell", "app.py", "--cmd", "cat /app/seen", cwd=tmp_path)  # and it was built
    assert proc.stdout == data.read_text(), proc.stderr

    app.write_text(APP.format(word="beta"))
    proc = cli("build", "app.py", "--explain", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert [s["cached"] for s in document["steps"]] == [True, True, True, False, False]
    run, env = document["explain"]
    assert run["step"] == 4 and run["where"].startswith("app.py:")
    assert run["reasons"] == ["argument changed: 'alpha' → 'beta'"]
    assert (env["step"], env["reasons"]) == (5, ["parent step 4 changed"])

    proc = cli("build", "app.py", "--explain", "--json", cwd=tmp_path)
    assert json.loads(proc.stdout)["explain"] == [], proc.stderr
