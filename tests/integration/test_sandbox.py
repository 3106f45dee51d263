"""The build sandbox: what a step can and cannot do, and what never reaches a layer."""

from __future__ import annotations

import hashlib
import json
import os

import imagewright as modal
from imagewright.plan.planner import plan_image


def test_step_cannot_mount_or_mknod_but_can_apt_install(builder, fresh):
    image = fresh.run_commands(
        "mount -t tmpfs none /mnt && echo MOUNTED || echo mount-refused",
        "mknod /dev-sda b 8 0 && echo MADE || echo mknod-refused",
    ).apt_install("jq")
    _, recorder = builder.build(image)
    assert "mount-refused" in recorder.lines and "MOUNTED" not in recorder.lines
    assert "mknod-refused" in recorder.lines and "MADE" not in recorder.lines
    assert builder.run(image, "jq --version").startswith("jq-")


def test_step_namespaces_tmp_and_environment(builder, fresh, monkeypatch):
    monkeypatch.setenv("IW_HOST_ONLY", "leak")
    image = fresh.run_commands(
        "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' ')",
        "echo tmp=$(stat -c %a /tmp) files=$(ls /tmp | grep -v .imagewright | wc -l)",
        "echo host=$(hostname) leak=${IW_HOST_ONLY:-none} find_links=${PIP_FIND_LINKS:-none}",
        "touch /tmp/scratch",
    )
    _, recorder = builder.build(image)
    log = "\n".join(recorder.lines)
    assert "pid1=/usr/bin/bwrap" in log or "pid1=/bin/sh" in log  # a PID namespace of its own
    assert "tmp=1777 files=0" in log
    assert "host=imagewright leak=none find_links=none" in log
    assert "scratch" not in builder.run(image, "ls /tmp")


def test_https_inside_steps_trusts_the_host_ca_without_baking_it_in(builder, fresh, store):
    image = fresh.run_commands(
        "python -c \"import urllib.request, os; print(os.environ['SSL_CERT_FILE'])\"",
        "pip download --no-deps -d /tmp/dl six && echo https-ok",
    )
    _, recorder = builder.build(image)
    assert "https-ok" in "\n".join(recorder.lines)
    plan = plan_image(image)
    config = json.dumps(plan.config.to_json())
    assert "SSL_CERT_FILE" not in config and "PROXY" not in config.upper()
    assert not (store.layer_dir(plan.key) / "diff" / "tmp").exists()


def test_secrets_never_land_in_layers_logs_or_config(builder, fresh, store):
    secret_value = f"s3cr3t-{os.getpid()}-value"
    digest = hashlib.sha256(secret_value.encode()).hexdigest()
    image = fresh.run_commands(
        f'test "$(printf %s "$API_TOKEN" | sha256sum | cut -d" " -f1)" = {digest} && echo token-ok',
        "echo token is $API_TOKEN",
        secrets=[modal.Secret.from_dict({"API_TOKEN": secret_value})],
    ).apt_install("jq", env={"BUILD_ONLY": secret_value})
    _, recorder = builder.build(image)
    log = "\n".join(recorder.lines)
    assert "token-ok" in log and "token is ***" in log and secret_value not in log
    needle = secret_value.encode()
    plan = plan_image(image)
    for step in plan.steps:
        for root, _dirs, files in os.walk(store.layer_dir(step.key)):
            for name in files:
                path = os.path.join(root, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as f:
                        assert needle not in f.read(), path
    for log_file in (store.root / "logs").iterdir():
        assert needle not in log_file.read_bytes(), log_file
    assert secret_value not in json.dumps(plan.config.to_json())
    assert "API_TOKEN" not in builder.run(image, "env")


def test_proxy_settings_pass_through_without_landing_in_the_image(builder, fresh, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,iw-test-no-proxy")
    image = fresh.run_commands("echo no_proxy=$NO_PROXY")
    _, recorder = builder.build(image)
    assert "no_proxy=127.0.0.1,iw-test-no-proxy" in recorder.lines
    assert "iw-test-no-proxy" not in json.dumps(plan_image(image).config.to_json())
    # containers get the host's proxy settings too, at start, not from the image
    assert "NO_PROXY=127.0.0.1,iw-test-no-proxy" in builder.run(image, "env")
