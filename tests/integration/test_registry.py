"""Push and pull against a real docker-registry on 127.0.0.1, judged by skopeo: manifest
digests, auth (htpasswd), blob reuse and mounts, dropped connections, bad digests, and
from_registry with hostile layers. Fake servers on 127.0.0.1 (one port, one origin) check where
credentials go and how malformed manifests and corrupt layer data are reported.

docker-registry, htpasswd (apache2-utils) and skopeo are required (`make setup` installs them).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

import imagewright._http
from imagewright import Image, Secret
from imagewright.exception import InvalidError, RegistryError
from imagewright.export.push import push_image
from imagewright.oci.unpack import unpack_layer
from imagewright.plan.planner import plan_image
from imagewright.registry.auth import Credentials
from imagewright.registry.client import RegistryClient
from imagewright.registry.pull import LayerRef, pull_layer, resolve
from imagewright.registry.resolve import RegistryResolver
from imagewright.store.blobs import LayerBlobs

from .conftest import cli
from .registry_helpers import Answer, DroppingProxy, FakeServer, push_raw, registry

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


def test_a_tag_naming_the_manifest_costs_one_check(image, store, reg, monkeypatch):
    first = push_image(image, f"{reg}/iw/once:v1", store=store)
    checked: list[str] = []
    blob_exists = RegistryClient.blob_exists
    monkeypatch.setattr(
        RegistryClient, "blob_exists", lambda c, d: checked.append(d) or blob_exists(c, d)
    )
    clients: list[object] = []  # httpx clients made (quickhead.py's HEAD needs none)
    http_client = imagewright._http.http_client
    monkeypatch.setattr(
        imagewright._http, "http_client", lambda **kw: clients.append(kw) or http_client(**kw)
    )
    again = push_image(image, f"{reg}/iw/once:v1", store=store)
    assert checked == [] and set(again.present) == {*first.uploaded, *first.mounted, *first.present}
    assert clients == []
    # the tag names another manifest (zstd layers): each blob is checked, and the tag moves
    moved = push_image(image, f"{reg}/iw/once:v1", store=store, compression="zstd")
    assert checked and clients and moved.manifest_digest != first.manifest_digest
    assert _remote_digest(reg, "iw/once:v1") == moved.manifest_digest
    back = push_image(image, f"{reg}/iw/once:v1", store=store)
    assert back.uploaded == () and _remote_digest(reg, "iw/once:v1") == first.manifest_digest


def test_pushing_an_unchanged_image_again_loads_no_http_client(image, store, reg, tmp_path):
    """The second `imagewright push` asks its one question without httpx, ssl or argparse."""
    (tmp_path / "app.py").write_text(
        "import imagewright as modal\n"
        "image = modal.Image.debian_slim(python_version='3.11').env({'IW_AGAIN': '1'})\n"
    )
    target = f"{reg}/iw/again:v1"
    first = cli("push", "app.py", target, cwd=tmp_path)
    assert first.returncode == 0 and "(0 blob(s) sent" not in first.stdout, first.stderr
    digest = first.stdout.split("manifest ")[1].split()[0]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imagewright", "push", "app.py", target],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"manifest {digest} (0 blob(s) sent, 0 mounted," in proc.stdout
    assert _remote_digest(reg, "iw/again:v1") == digest
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "imagewright.registry.quickhead" in imported  # (the listing is the real one)
    assert not {"httpx", "httpcore", "h11", "ssl", "argparse"} & imported


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
    # again: the anonymous HEAD would get a 401, so the client with credentials checks the tag
    again = cli("push", str(app), f"{auth_reg}/iw/app:v1")
    assert again.returncode == 0 and f"manifest {digest} (0 blob(s) sent" in again.stdout
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
    # drop the connection once half of the bytes went through (blobs go several at a time)
    proxy = DroppingProxy(reg, drop_after=sum(b.size for b in layers) // 2)
    try:
        with pytest.raises(RegistryError) as info:
            push_image(image, f"{proxy.address}/iw/drop:v1", store=store)
        assert proxy.dropped
        message = str(info.value)
        failed = re.search(r"uploading blob (sha256:[0-9a-f]{64})", message)
        assert failed and "connection" in message, message
        for step in plan_image(image).steps:
            assert store.lookup(step.key) is not None
        assert {p: p.stat().st_size for p in before} == before
        with RegistryClient(reg, "iw/drop") as client:
            complete = {b.digest for b in layers if client.blob_exists(b.digest)}
        retry = push_image(image, f"{proxy.address}/iw/drop:v1", store=store)
    finally:
        proxy.close()
    # the resumed push sends only what did not arrive, the dropped blob among it
    assert failed.group(1) in retry.uploaded and failed.group(1) not in complete
    assert complete <= set(retry.present) and not complete & set(retry.uploaded)
    assert {b.digest for b in layers} <= {*retry.present, *retry.uploaded}
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
    plan = result.plan
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
    with pytest.raises(InvalidError, match="unknown instruction: FROBNICATE"):
        Image.from_registry(f"{reg}/base:1", setup_dockerfile_commands=["FROBNICATE x"])
    with pytest.raises(RegistryError, match=r"MANIFEST_UNKNOWN|NAME_UNKNOWN"):
        plan_image(Image.from_registry(f"{reg}/nothing:here"), resolver=RegistryResolver())


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
    steps = plan_image(image, resolver=RegistryResolver()).steps
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
        plan_image(image, resolver=RegistryResolver())


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
    layer_step = result.plan.steps[0]
    assert not result.steps[0].cached
    assert (store.layer_dir(layer_step.key) / "diff" / "etc" / "cloud").read_bytes() == b"cloud"
    wrong = Secret.from_dict({"SERVICE_ACCOUNT_JSON": SA_JSON.replace("k1", "k2")})
    with pytest.raises(RegistryError, match="401"):
        plan_image(Image.from_gcp_artifact_registry(tag, wrong), resolver=RegistryResolver())

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
    plan = plan_image(Image.from_aws_ecr(tag, Secret.from_dict(keys)), resolver=RegistryResolver())
    assert plan.steps[0].key == layer_step.key
    assert (tmp_path / "aws-args").read_text().split() == [
        "ecr", "get-login-password", "--region", "eu-west-1"
    ]  # fmt: skip
    seen = (tmp_path / "aws-env").read_text()
    assert "AWS_ACCESS_KEY_ID=AKIATEST" in seen and "AWS_PROFILE" not in seen

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no aws CLI at all
    other = Secret.from_dict({**keys, "AWS_ACCESS_KEY_ID": "AKIAOTHER"})
    with pytest.raises(InvalidError, match="needs the aws CLI"):
        plan_image(Image.from_aws_ecr(tag, other), resolver=RegistryResolver())


# ---- credentials stay with the registry ------------------------------------------------------

BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BLOB = b"hello, elsewhere"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


def _elsewhere(method: str, path: str, auth: str | None) -> Answer:
    """Another origin (same host, another port): takes uploads and serves the blob, and asks
    for credentials under /private."""
    if path.startswith("/private"):
        return 401, {"WWW-Authenticate": 'Basic realm="elsewhere"'}, b""
    if method == "GET":
        return 200, {}, BLOB
    return (202 if method == "PATCH" else 201), {"Location": "/upload/next"}, b""


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_credentials_go_only_to_the_registrys_origin(scheme):
    """Upload locations and blob redirects that name another origin get no Authorization, and
    a 401 from there is not answered; the token realm gets the Basic credentials."""
    good = BASIC if scheme == "basic" else "Bearer tok123"
    elsewhere = FakeServer(_elsewhere)
    tokens = FakeServer(
        lambda method, path, auth: (
            (200, {}, b'{"token": "tok123"}') if auth == BASIC else (401, {}, b"")
        )
    )

    def registry_answer(method: str, path: str, auth: str | None) -> Answer:
        if auth != good:
            realm = f'Bearer realm="{tokens.url}/token",service="iw"'
            return 401, {"WWW-Authenticate": realm if scheme == "bearer" else "Basic"}, b""
        if method == "POST":  # an upload starts: it goes on at the other origin
            return 202, {"Location": f"{elsewhere.url}/upload/1"}, b""
        if method == "GET" and "/blobs/" in path:  # blobs are served from storage elsewhere
            return 307, {"Location": f"{elsewhere.url}/storage/{path.rsplit('/', 1)[1]}"}, b""
        return 200, {}, b""

    registry = FakeServer(registry_answer)
    credentials = Credentials(USER, PASSWORD)
    with elsewhere, tokens, registry:
        with RegistryClient(registry.address, "iw/app", credentials=credentials) as client:
            client.upload_blob(BLOB_DIGEST, BLOB)  # POST here, PUT elsewhere
            assert [r.method for r in elsewhere.requests] == ["PUT"]
            assert elsewhere.authorizations() == {None}
            assert b"".join(client.get_blob(BLOB_DIGEST)) == BLOB
            with pytest.raises(RegistryError, match="credentials are not sent there"):
                client.upload_blob(BLOB_DIGEST, BLOB, location=f"{elsewhere.url}/private/1")
        with RegistryClient(
            registry.address, "iw/app", credentials=credentials, chunk_size=4
        ) as client:
            client.upload_blob(BLOB_DIGEST, BLOB)  # PATCH chunks, then PUT, all elsewhere
    methods = [r.method for r in elsewhere.requests]
    assert "PATCH" in methods and methods.count("PUT") == 3 and "GET" in methods
    assert elsewhere.authorizations() == {None}
    assert good in registry.authorizations()
    assert tokens.authorizations() <= {BASIC}
    assert bool(tokens.requests) == (scheme == "bearer")


# ---- pulls end in RegistryError, never a traceback -------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _serving(manifest: dict, blobs: list[bytes]) -> FakeServer:
    """A registry holding one image, iw/bad:1, with this manifest and these blobs."""
    by_digest = {_sha(b): b for b in blobs}
    data = json.dumps(manifest).encode()

    def answer(method: str, path: str, auth: str | None) -> Answer:
        if path == "/v2/iw/bad/manifests/1":
            return 200, {"Content-Type": str(manifest.get("mediaType"))}, data
        digest = path.rsplit("/", 1)[1]
        if "/blobs/" in path and digest in by_digest:
            return 200, {}, by_digest[digest]
        return (200 if path == "/v2/" else 404), {}, b""

    return FakeServer(answer)


_CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {}}).encode()
_CONFIG_DESC = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(_CONFIG)}


@pytest.mark.parametrize(
    ("manifest", "blobs", "expected"),
    [
        ({"mediaType": OCI_MANIFEST, "layers": []}, [], r"malformed \(KeyError: no 'config'\)"),
        (
            {
                "mediaType": OCI_MANIFEST, "config": _CONFIG_DESC,
                "layers": [{"digest": "sha256:../../../../etc/passwd", "size": 1}],
            },
            [_CONFIG], "names 'sha256:../../../../etc/passwd', which is not a sha256 digest",
        ),
        (
            {
                "mediaType": OCI_MANIFEST, "config": _CONFIG_DESC,
                "layers": [{"digest": _sha(b"x"), "size": "big"}],
            },
            [_CONFIG], r"manifest of .* is malformed \(ValueError",
        ),
        ({"mediaType": OCI_INDEX, "manifests": ["x"]}, [], r"image index of .* is malformed"),
        (
            {
                "mediaType": OCI_MANIFEST,
                "config": {**_CONFIG_DESC, "digest": _sha(b'{"config": {"Env": [1]}}')},
                "layers": [],
            },
            [b'{"config": {"Env": [1]}}'], r"config of .* is malformed \(TypeError",
        ),
    ],
    ids=["no-config", "digest-path", "size-not-a-number", "index-of-strings", "env-of-numbers"],
)  # fmt: skip
def test_malformed_manifests_and_configs_are_registry_errors(manifest, blobs, expected):
    with _serving(manifest, blobs) as registry, pytest.raises(RegistryError, match=expected):
        resolve(f"{registry.address}/iw/bad:1", None)


def _tar_of(size: int) -> bytes:
    return _tar(("etc", "dir", ""), ("etc/big", "file", b"x" * size))


def _gzip_then_bad_block(raw: bytes) -> bytes:
    """A gzip stream whose second member is a deflate block of the reserved type: zlib fails
    mid-file, not while the first header is read."""
    return gzip.compress(raw[:40960], mtime=0) + bytes.fromhex("1f8b0800000000000000ff07") + b"\0"


@pytest.mark.parametrize(
    ("blob", "media_type"),
    [
        (gzip.compress(_tar_of(100_000), mtime=0)[:-500], "gzip"),
        (_gzip_then_bad_block(_tar_of(100_000)), "gzip"),
        (b"\x1f\x8b" + b"not gzip at all" * 10, "gzip"),
        (zstandard.ZstdCompressor().compress(os.urandom(50_000) + _tar_of(100_000))[:-9], "zstd"),
        (b"\x28\xb5\x2f\xfd" + b"not zstd at all" * 10, "zstd"),
        (_tar_of(100_000)[:20_000], "tar"),
    ],
    ids=["gzip-cut", "gzip-bad-block", "gzip-garbage", "zstd-cut", "zstd-garbage", "tar-cut"],
)
def test_corrupt_layer_data_is_a_registry_error(blob, media_type, tmp_path):
    digest = _sha(blob)
    upper = tmp_path / "upper"
    upper.mkdir()
    with _serving({}, [blob]) as registry:
        layer = LayerRef(
            registry.address, "iw/bad", digest, len(blob),
            f"application/vnd.oci.image.layer.v1.{media_type}".replace(".tar.tar", ".tar"),
        )  # fmt: skip
        with pytest.raises(
            RegistryError, match=r"corrupt or cut short|not a valid layer tar"
        ) as info:
            pull_layer(layer, None, tmp_path, upper)
    assert digest in str(info.value) and registry.address in str(info.value)


@pytest.mark.parametrize("name", [".wh...", ".wh..", "sub/.wh...", ".wh."])
def test_whiteouts_of_dot_dotdot_and_nothing_are_refused(name, tmp_path):
    parent = tmp_path / "parent"
    root = parent / "root"
    (root / "sub").mkdir(parents=True)
    (parent / "canary").write_text("alive")
    (root / "canary").write_text("alive")
    layer = _tar(("sub", "dir", ""), (name, "file", b""))
    with pytest.raises(RegistryError, match=r"refused entry .*whiteout"):
        unpack_layer(io.BytesIO(layer), root / "sub", "test layer")
    assert (parent / "canary").read_text() == (root / "canary").read_text() == "alive"


def test_add_of_a_corrupt_archive_fails_the_step_without_a_traceback(tmp_path):
    (tmp_path / "bad.tar.gz").write_bytes(_gzip_then_bad_block(_tar_of(100_000)))
    (tmp_path / "Dockerfile").write_text("FROM scratch\nADD bad.tar.gz /x/\n")
    (tmp_path / "app.py").write_text(
        "import imagewright as modal\nimage = modal.Image.from_dockerfile('Dockerfile')\n"
    )
    env = {"IMAGEWRIGHT_HOME": str(tmp_path / "home")}
    proc = cli("build", "app.py", cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "bad.tar.gz" in proc.stderr and "corrupt or cut short" in proc.stderr, proc.stderr
