"""Push and pull against a real docker-registry on 127.0.0.1, judged by skopeo: manifest
digests, auth (htpasswd), blob reuse and mounts, dropped connections, bad digests, and
from_registry with hostile layers.

docker-registry, htpasswd (apache2-utils) and skopeo are required (`make setup` installs them).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from imagewright import Image, Secret
from imagewright.exception import InvalidError, RegistryError
from imagewright.export.blobs import LayerBlobs
from imagewright.plan.planner import plan_image
from imagewright.registry.client import RegistryClient
from imagewright.registry.push import push_image

from .conftest import cli
from .registry_helpers import DroppingProxy, push_raw, registry

USER, PASSWORD = "iw", "s3cret"


def _run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> str:
    for tool in ("docker-registry", "htpasswd", "skopeo"):
        assert shutil.which(tool), f"{tool} is not installed; `make setup` installs it"
    with registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


# GCP's documented basic-auth user for a service-account key, and ECR's user for its token.
SA_JSON = json.dumps({"type": "service_account", "private_key_id": "k1", "project_id": "iw"})
ECR_TOKEN = "ecr-login-token"


@pytest.fixture(scope="module")
def auth_reg(tmp_path_factory) -> str:
    users = [(USER, PASSWORD), ("_json_key", SA_JSON), ("AWS", ECR_TOKEN)]
    entry = "".join(_run("htpasswd", "-Bbn", u, p).strip() + "\n" for u, p in users)
    with registry(tmp_path_factory.mktemp("auth-registry"), htpasswd=entry) as address:
        yield address


@pytest.fixture(scope="module")
def image(py311: Image, builder) -> Image:
    """The 3.11 base plus a 3 MB layer of random bytes (so it cannot compress away)."""
    img = py311.run_commands("head -c 3000000 /dev/urandom > /opt/big").env({"IW_PUSH": "1"})
    builder.build(img)
    return img


def _remote_digest(address: str, repo_tag: str) -> str:
    out = _run("skopeo", "inspect", "--tls-verify=false", f"docker://{address}/{repo_tag}")
    return json.loads(out)["Digest"]


def test_push_matches_skopeo_and_export(image, store, reg, tmp_path):
    # 1 MiB chunks: every layer above that goes up in PATCH chunks
    result = push_image(image, f"{reg}/iw/app:v1", store=store, chunk_size=1 << 20)
    assert result.uploaded and not result.present
    assert _remote_digest(reg, "iw/app:v1") == result.manifest_digest
    exported = image.export(tmp_path / "oci", compression="gzip")
    assert exported.manifest_digest == result.manifest_digest
    _run(
        "skopeo", "copy", "--src-tls-verify=false",
        f"docker://{reg}/iw/app:v1", f"oci:{tmp_path / 'back'}:v1",
    )  # fmt: skip
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == result.manifest_digest


def test_second_push_sends_nothing_and_other_repo_mounts(image, store, reg):
    again = push_image(image, f"{reg}/iw/app:v1", store=store)
    assert again.uploaded == () and again.mounted == ()
    first = push_image(image, f"{reg}/iw/app:v1", store=store)
    assert len(first.present) == len(again.present) >= 3
    other = push_image(image, f"{reg}/iw/other:v2", store=store)
    assert other.uploaded == () and len(other.mounted) == len(first.present)
    assert _remote_digest(reg, "iw/other:v2") == first.manifest_digest


def test_zstd_push(image, store, reg):
    result = push_image(image, f"{reg}/iw/zstd:v1", store=store, compression="zstd")
    assert _remote_digest(reg, "iw/zstd:v1") == result.manifest_digest


def _image_file(tmp_path: Path) -> Path:
    app = tmp_path / "app.py"
    app.write_text(
        "import imagewright as modal\n"
        "image = modal.Image.debian_slim(python_version='3.11')"
        ".run_commands('head -c 3000000 /dev/urandom > /opt/big').env({'IW_PUSH': '1'})\n"
    )
    return app


def test_cli_push_with_and_without_credentials(image, auth_reg, tmp_path, monkeypatch):
    app = _image_file(tmp_path)
    empty = tmp_path / "no-creds"
    empty.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))
    denied = cli("push", str(app), f"{auth_reg}/iw/app:v1")
    assert denied.returncode == 1, denied.stderr
    assert "Traceback" not in denied.stderr
    assert "RegistryError" in denied.stderr and "401" in denied.stderr, denied.stderr
    assert auth_reg in denied.stderr

    creds = tmp_path / "creds"
    creds.mkdir()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (creds / "config.json").write_text(json.dumps({"auths": {auth_reg: {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(creds))
    pushed = cli("push", str(app), f"{auth_reg}/iw/app:v1")
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.split("manifest ")[1].split()[0]
    out = _run(
        "skopeo", "inspect", "--tls-verify=false", f"--creds={USER}:{PASSWORD}",
        f"docker://{auth_reg}/iw/app:v1",
    )  # fmt: skip
    assert json.loads(out)["Digest"] == digest

    (creds / "config.json").write_text(
        json.dumps({"auths": {auth_reg: {"username": USER, "password": "wrong"}}})
    )
    refused = cli("push", str(app), f"{auth_reg}/iw/app:v2")
    assert refused.returncode == 1 and "were refused" in refused.stderr, refused.stderr


def test_dropped_connection_then_resume(image, store, reg):
    layers = [
        LayerBlobs(store).cached(store.lookup(s.key), "gzip", None)
        for s in plan_image(image).steps
        if not store.lookup(s.key).empty
    ]
    before = {b.path: b.path.stat().st_size for b in layers}
    # drop halfway through the second layer: the first must be complete in the registry
    proxy = DroppingProxy(reg, drop_after=layers[0].size + layers[1].size // 2)
    try:
        with pytest.raises(RegistryError) as info:
            push_image(image, f"{proxy.address}/iw/drop:v1", store=store)
        assert proxy.dropped
        message = str(info.value)
        assert f"uploading blob {layers[1].digest}" in message, message
        assert "connection" in message, message
        for step in plan_image(image).steps:
            assert store.lookup(step.key) is not None
        assert {p: p.stat().st_size for p in before} == before
        retry = push_image(image, f"{proxy.address}/iw/drop:v1", store=store)
    finally:
        proxy.close()
    assert layers[0].digest in retry.present
    assert layers[0].digest not in retry.uploaded and layers[1].digest in retry.uploaded
    assert _remote_digest(reg, "iw/drop:v1") == retry.manifest_digest


def test_wrong_digest_is_rejected(reg):
    with RegistryClient(reg, "iw/bad") as client, pytest.raises(RegistryError) as info:
        client.upload_blob("sha256:" + "0" * 64, b"hello")
    assert info.value.code == "DIGEST_INVALID"
    assert "DIGEST_INVALID" in str(info.value) and reg in str(info.value)


def test_unreachable_registry_is_a_clear_error(image, store):
    from .registry_helpers import free_port

    with pytest.raises(RegistryError, match="could not connect"):
        push_image(image, f"127.0.0.1:{free_port()}/iw/app:v1", store=store)


# ---- from_registry ------------------------------------------------------------------------


def test_from_registry_builds_and_runs(py311, builder, store, reg):
    base = py311.run_commands("rm /etc/issue && rm -rf /etc/cron.daily").workdir("/srv")
    push_image(base, f"{reg}/base:1", store=store)
    pulled = Image.from_registry(f"{reg}/base:1", force_build=True)
    image = pulled.run_commands("python --version > /v")
    result, _ = builder.build(image)
    assert not any(s.cached for s in result.steps)  # every layer was really pulled
    out = builder.run(
        image, "cat /v; pwd; test ! -e /etc/issue && test ! -e /etc/cron.daily && echo gone"
    )
    assert out.split() == ["Python", "3.11.2", "/srv", "gone"], out
    plan = plan_image(image)
    assert plan.config.workdir == "/srv" and dict(plan.config.env)["PATH"]
    again, _ = builder.build(
        Image.from_registry(f"{reg}/base:1").run_commands("python --version > /v")
    )
    assert all(s.cached for s in again.steps)


def test_dockerfile_copies_from_a_registry_image(py311, builder, store, reg, tmp_path):
    """COPY --from= a name that is no stage pulls that image, as BuildKit does."""
    tools = py311.run_commands("mkdir -p /opt/tools && echo '#!/bin/sh\necho tool' > /opt/tools/t")
    push_image(tools.run_commands("chmod 755 /opt/tools/t"), f"{reg}/tools:1", store=store)
    (tmp_path / "Dockerfile").write_text(
        f"FROM python:3.11-slim-bookworm\nCOPY --from={reg}/tools:1 /opt/tools/t /usr/local/bin/\n"
    )
    image = Image.from_dockerfile(tmp_path / "Dockerfile", context_dir=tmp_path)
    assert builder.run(image, "t") == "tool\n"


def test_from_registry_setup_lines_and_bad_input(reg):
    with pytest.raises(InvalidError, match="only RUN lines"):
        Image.from_registry(f"{reg}/base:1", setup_dockerfile_commands=["COPY a /b"])
    with pytest.raises(RegistryError, match=r"MANIFEST_UNKNOWN|NAME_UNKNOWN"):
        plan_image(Image.from_registry(f"{reg}/nothing:here"))


def _tar(*members: tuple[str, str, bytes | str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(payload)
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 8, 0
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    return out.getvalue()


CONFIG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (_tar(("ok", "file", b"x"), ("../evil", "file", b"x")), r"'\.\./evil'.*'\.\.' in the path"),
        (_tar(("/etc/evil", "file", b"x")), "'/etc/evil'.*absolute path"),
        (
            _tar(("escape", "symlink", "/tmp/iw-escape-target"), ("escape/pwned", "file", b"x")),
            "'escape/pwned'.*'escape' on its path is not a directory",
        ),
        (_tar(("dev", "dir", ""), ("dev/sda", "chr", "")), "'dev/sda'.*device nodes"),
    ],
    ids=["dotdot", "absolute", "symlink-escape", "device"],
)
def test_malicious_layers_are_refused(layer, expected, builder, store, reg, tmp_path):
    target = Path("/tmp/iw-escape-target")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    ok = _tar(("etc", "dir", ""), ("etc/fine", "file", b"fine"))
    push_raw(reg, "evil", "1", [ok, layer], {**CONFIG, "config": {}})
    image = Image.from_registry(f"{reg}/evil:1", force_build=True)
    steps = plan_image(image).steps
    scratch_before = set((store.root / "tmp").glob("*/layer"))
    with pytest.raises(RegistryError, match=expected):
        builder.build(image)
    assert store.lookup(steps[1].key) is None and store.lookup(steps[2].key) is None
    assert not any(target.iterdir())  # nothing was written through the symlink
    assert set((store.root / "tmp").glob("*/layer")) <= scratch_before  # scratch area gone
    shutil.rmtree(target)


def test_add_python_without_a_download_source(reg, builder, monkeypatch):
    monkeypatch.setenv("UV_PYTHON_INSTALL_MIRROR", "http://127.0.0.1:9/unreachable")
    push_raw(reg, "tiny", "1", [_tar(("etc", "dir", ""))], {**CONFIG, "config": {}})
    image = Image.from_registry(f"{reg}/tiny:1", add_python="3.8")
    with pytest.raises(InvalidError, match=r"standalone CPython 3\.8.*could not be reached"):
        builder.build(image)


def test_bearer_token_challenge(tmp_path, monkeypatch):
    """A registry that answers with a Bearer challenge: the token is fetched from its realm with
    the stored credentials (Basic) for our scope, then sent on every request."""
    import http.server
    import threading

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/token"):
                seen.append(self.path)
                good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != good:
                    return self._answer(401)
                return self._answer(200, json.dumps({"access_token": "tok123"}).encode())
            self.do_HEAD()

        def do_HEAD(self) -> None:
            if self.headers.get("Authorization") == "Bearer tok123":
                return self._answer(200 if self.path == "/v2/" else 404)
            realm = f"http://127.0.0.1:{server.server_port}/token"
            challenge = f'Bearer realm="{realm}",service="iw-test"'
            self._answer(401, headers={"WWW-Authenticate": challenge})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_port}"
        creds = tmp_path / "config.json"
        creds.write_text(
            json.dumps({"auths": {f"http://{address}": {"username": USER, "password": PASSWORD}}})
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        with RegistryClient(address, "iw/app") as client:
            assert client.blob_exists("sha256:" + "1" * 64) is False
    finally:
        server.shutdown()
    assert (
        seen
        and "service=iw-test" in seen[0]
        and "scope=repository%3Aiw%2Fapp%3Apull%2Cpush" in seen[0]
    )


def test_ecr_and_gcp_argument_checks():
    secret = Secret.from_dict({"SERVICE_ACCOUNT_JSON": SA_JSON})
    for method in (Image.from_aws_ecr, Image.from_gcp_artifact_registry):
        with pytest.raises(TypeError, match="use the singular 'secret' argument"):
            method("127.0.0.1:5000/a:1", secrets=[secret])
    with pytest.raises(InvalidError, match="AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REG"):
        Image.from_aws_ecr("127.0.0.1:5000/a:1", Secret.from_dict({"AWS_ACCESS_KEY_ID": "x"}))
    with pytest.raises(InvalidError, match=r"SERVICE_ACCOUNT_JSON.*no secret"):
        Image.from_gcp_artifact_registry("127.0.0.1:5000/a:1")
    both = Secret.from_dict(
        {"SERVICE_ACCOUNT_JSON": "{}", "REGISTRY_USERNAME": "u", "REGISTRY_PASSWORD": "p"}
    )
    with pytest.raises(InvalidError, match="matches several auth types"):
        Image.from_registry("127.0.0.1:5000/a:1", both)
    role = Secret.from_dict({"AWS_ROLE_ARN": "arn:aws:iam::1:role/r", "AWS_REGION": "eu-west-1"})
    image = Image.from_aws_ecr("127.0.0.1:5000/a:1", role)  # valid in Modal; not usable here
    with pytest.raises(InvalidError, match="AWS_ROLE_ARN is not supported locally"):
        plan_image(image)


def test_gcp_and_ecr_credentials(auth_reg, builder, store, tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (creds / "config.json").write_text(json.dumps({"auths": {auth_reg: {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(creds))
    layer = _tar(("etc", "dir", ""), ("etc/cloud", "file", b"cloud"))
    push_raw(auth_reg, "iw/cloud", "1", [layer], {**CONFIG, "config": {}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no stored credentials from here on
    tag = f"{auth_reg}/iw/cloud:1"

    image = Image.from_gcp_artifact_registry(
        tag, Secret.from_dict({"SERVICE_ACCOUNT_JSON": SA_JSON}), force_build=True
    )
    result, _ = builder.build(image)
    layer_step = plan_image(image).steps[0]
    assert not result.steps[0].cached
    assert (store.layer_dir(layer_step.key) / "diff" / "etc" / "cloud").read_bytes() == b"cloud"
    wrong = Secret.from_dict({"SERVICE_ACCOUNT_JSON": SA_JSON.replace("k1", "k2")})
    with pytest.raises(RegistryError, match="401"):
        plan_image(Image.from_gcp_artifact_registry(tag, wrong))

    # ECR: a stand-in aws CLI prints the token, and shows it got the secret's keys and no more.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(
        f'#!/bin/sh\nenv > {tmp_path / "aws-env"}\necho "$@" > {tmp_path / "aws-args"}\n'
        f"echo {ECR_TOKEN}\n"
    )
    (bin_dir / "aws").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("AWS_PROFILE", "host-profile")
    keys = {
        "AWS_ACCESS_KEY_ID": "AKIATEST",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "eu-west-1",
    }
    plan = plan_image(Image.from_aws_ecr(tag, Secret.from_dict(keys)))
    assert plan.steps[0].key == layer_step.key
    assert (tmp_path / "aws-args").read_text().split() == [
        "ecr", "get-login-password", "--region", "eu-west-1"
    ]  # fmt: skip
    seen = (tmp_path / "aws-env").read_text()
    assert "AWS_ACCESS_KEY_ID=AKIATEST" in seen and "AWS_PROFILE" not in seen

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no aws CLI at all
    other = Secret.from_dict({**keys, "AWS_ACCESS_KEY_ID": "AKIAOTHER"})
    with pytest.raises(InvalidError, match="needs the aws CLI"):
        plan_image(Image.from_aws_ecr(tag, other))
