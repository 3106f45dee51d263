"""The local secret store: Secret.from_name is read when used, never at import; files are the
user's own with mode 0600; missing names and keys name the command that fixes them."""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
import time
from pathlib import Path

import pytest

from imagewright import Secret, settings
from imagewright.cli.main import run
from imagewright.exception import AlreadyExistsError, InvalidError, NotFoundError
from imagewright.secret import create_secret, delete_secret, list_secrets, read_secret


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IMAGEWRIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_from_name_is_lazy_and_rereads_the_store() -> None:
    secret = Secret.from_name("api", required_keys=["TOKEN"])  # nothing stored yet: fine
    assert repr(secret) == "Secret.from_name('api')"
    with pytest.raises(NotFoundError, match="imagewright secret create api KEY=VALUE"):
        _ = secret.env
    create_secret("api", {"OTHER": "1"})
    with pytest.raises(NotFoundError, match=r"TOKEN.*imagewright secret create api TOKEN=\.\.\."):
        _ = secret.env
    create_secret("api", {"TOKEN": "t-1"}, force=True)
    assert secret.env == {"TOKEN": "t-1"}
    create_secret("api", {"TOKEN": "t-2"}, force=True)
    assert secret.env == {"TOKEN": "t-2"}  # read again: a rotated value reaches the next use
    assert "t-2" not in repr(secret)


def test_bad_names_and_keys() -> None:
    with pytest.raises(InvalidError):
        Secret.from_name("a/b")
    with pytest.raises(InvalidError):
        Secret.from_name("ok", required_keys="TOKEN")  # type: ignore[arg-type]
    with pytest.raises(InvalidError):
        create_secret("ok", {})
    with pytest.raises(InvalidError):
        create_secret("ok", {"A=B": "x"})


def test_store_is_private(home: Path) -> None:
    path = create_secret("s", {"A": "1"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.secrets_dir().stat().st_mode) == 0o700
    assert path.stat().st_uid == os.geteuid()
    assert [p.name for p in settings.secrets_dir().iterdir()] == ["s.json"]  # no temp left
    with pytest.raises(AlreadyExistsError, match="already exists"):
        create_secret("s", {"A": "2"})
    assert read_secret("s") == {"A": "1"}
    path.chmod(0o644)
    with pytest.raises(InvalidError, match="chmod 600"):
        read_secret("s")
    path.chmod(0o600)
    assert list(list_secrets()) == ["s"]
    delete_secret("s")
    with pytest.raises(NotFoundError):
        delete_secret("s")
    delete_secret("s", allow_missing=True)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("FROM_FILE=file-value\n")
    assert run(["secret", "create", "cli", "A=alpha-value", "--from-dotenv", str(dotenv)]) == 0
    assert run(["secret", "create", "cli", "A=x"]) == 2  # exists, no --force
    assert run(["secret", "create", "other", "just-a-value"]) == 2
    assert run(["secret", "list"]) == 0
    out = capsys.readouterr()
    assert "cli" in out.out
    for value in ("alpha-value", "file-value", "just-a-value"):
        assert value not in out.out + out.err  # values are never printed
    assert read_secret("cli") == {"A": "alpha-value", "FROM_FILE": "file-value"}
    assert run(["secret", "create", "cli", "A=beta", "--force"]) == 0
    assert read_secret("cli") == {"A": "beta"}
    assert run(["secret", "delete", "cli", "--yes"]) == 0
    assert run(["secret", "delete", "cli", "--yes"]) == 2
    assert "imagewright secret list" in capsys.readouterr().err


def test_info_update_and_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    Secret.objects.create("api", {"TOKEN": "t"})
    with pytest.raises(AlreadyExistsError):
        Secret.objects.create("api", {"TOKEN": "other"})
    Secret.objects.create("api", {"TOKEN": "other"}, allow_existing=True)  # left as it is
    secret = Secret.from_name("api")
    assert secret.name == "api" and secret.object_id == "st-api" and secret.hydrate() is secret
    info = secret.info()
    assert (info.name, info.environment_name, info.last_used) == ("api", "", None)
    assert info.created_by == pwd.getpwuid(os.geteuid()).pw_name
    secret.update({"EXTRA": "e"})
    assert read_secret("api") == {"TOKEN": "t", "EXTRA": "e"}
    asyncio.run(secret.update.aio({"TOKEN": "new"}))
    assert secret.env == {"TOKEN": "new", "EXTRA": "e"}
    with pytest.raises(InvalidError, match="must be a dict"):
        secret.update({"A": 1})  # type: ignore[dict-item]
    with pytest.raises(NotFoundError):
        Secret.from_name("missing").info()

    made = Secret.from_dict({"A": "1"})
    made.update({"B": "2"})
    assert made.env == {"A": "1", "B": "2"} and made.name is None
    assert made.info().name is None and made.object_id.startswith("st-local:")

    time.sleep(0.05)  # file times move by the kernel's tick
    Secret.objects.create("second", {"K": "v"})
    assert [s.name for s in Secret.objects.list()] == ["second", "api"]
    assert [s.name for s in asyncio.run(Secret.objects.list.aio(max_objects=1))] == ["second"]
    Secret.objects.delete("second")
    Secret.objects.delete("second", allow_missing=True)
    assert list(list_secrets()) == ["api"]
    monkeypatch.setenv(settings.IN_CONTAINER, "1")
    with pytest.raises(InvalidError, match="inside a container"):
        secret.update({"X": "1"})
