"""HTTP for the OCI distribution protocol: one repository of one registry, errors translated.

The only registry module that touches httpx. Every transport failure and every unexpected status
becomes a RegistryError naming the registry and repository, what was being done (which blob,
which manifest), the HTTP status and the registry's own error code and message.

Scheme: registries on loopback are spoken to over plain HTTP, as Docker does; others over HTTPS,
and when insecure (`insecure=True`, which push's --insecure sets, or the host[:port] listed in
IMAGEWRIGHT_INSECURE_REGISTRIES, Docker's insecure-registries) over HTTPS without verification,
then plain HTTP.
Auth: a 401 is answered once per request, Basic with stored credentials or Bearer with a token
fetched from the challenge's realm (anonymously when there are no credentials). As in Docker,
credentials go only to the registry's own origin (scheme, host and port) and, Basic, to its
token realm: never to an upload `Location` or a redirect that names another host or port,
and a 401 from another origin is not answered. GET and HEAD follow redirects (registries send
blob downloads to storage elsewhere), without credentials when the target is elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

from .. import settings
from ..exception import ExecutionError, RegistryError
from .auth import Challenge, Credentials, credentials_for, parse_challenge

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    import httpx

__all__ = ["RegistryClient", "is_loopback"]

CHUNK_THRESHOLD = 8 << 20  # blobs above this go up in PATCH chunks of this size
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_PIECE = 1 << 20  # bytes read and reported at a time
Body = Callable[[], bytes | Iterable[bytes]]  # called again when a request is retried


def is_loopback(registry: str) -> bool:
    """Whether host[:port] is this machine: localhost, 127.0.0.0/8 or ::1."""
    host = registry[1 : registry.find("]")] if registry.startswith("[") else registry
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RegistryClient:
    """Talks to `registry` about `repository`; use as a context manager."""

    def __init__(
        self,
        registry: str,
        repository: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        chunk_size: int = CHUNK_THRESHOLD,
        push: bool = True,
    ):
        self.registry, self.repository = registry, repository
        self.insecure = insecure or registry.lower() in settings.insecure_registries()
        self.chunk_size = chunk_size
        self.credentials = credentials or credentials_for(registry)
        self.scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        self._client: httpx.Client | None = None  # made at the first request: httpx is slow to load
        self._base: str | None = None
        self._auth: str | None = None

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def _http(self) -> httpx.Client:
        if self._client is None:
            from .._http import http_client

            self._client = http_client(insecure=self.insecure)
        return self._client

    # ---- requests ---------------------------------------------------------------------------

    def _error(
        self, what: str, detail: str, status: int | None = None, code: str | None = None
    ) -> RegistryError:
        where = f"{self.registry}/{self.repository}"
        return RegistryError(f"registry {where}: {what} failed: {detail}", status, code)

    def base(self) -> str:
        """The registry's URL, found by probing `/v2/` (and authenticating if it asks)."""
        if self._base is not None:
            return self._base
        import httpx

        schemes = _schemes(self.registry, self.insecure)
        for scheme in schemes:
            base = f"{scheme}://{self.registry}"
            try:
                response = self._http.get(f"{base}/v2/")
            except httpx.TransportError as exc:
                if scheme != schemes[-1]:
                    continue
                raise self._error("connecting", f"{_describe(exc)}{self._hint()}") from None
            self._base = base
            if response.status_code == 401:
                self._authenticate(response, "connecting")
            break
        assert self._base is not None
        return self._base

    def _hint(self) -> str:
        """How to reach this registry over plain HTTP or unverified TLS, if that could help:
        the setting, which every build, pull and push reads (only push has a flag for it)."""
        if self.insecure or is_loopback(self.registry):
            return ""
        return (
            f" (if {self.registry} speaks plain HTTP or has an untrusted certificate, list it "
            f"in {settings.INSECURE_REGISTRIES}, e.g. {settings.INSECURE_REGISTRIES}="
            f"{self.registry})"
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        expect: tuple[int, ...],
        headers: dict[str, str] | None = None,
        body: Body | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send one request (URL absolute, or relative to the registry); retry once on 401.

        Credentials go only to the registry's own origin (see the module docstring).
        """
        import httpx

        base = self.base()
        url = urljoin(base + "/", url)
        answered = False  # a 401 is answered once
        for _hop in range(_MAX_REDIRECTS + 2):
            own = _origin(url) == _origin(base)
            sent = dict(headers or {})
            if self._auth and own:
                sent["Authorization"] = self._auth
            try:
                request = self._http.build_request(
                    method, url, headers=sent, content=body() if body else None
                )
                response = self._http.send(request, stream=stream)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise self._error(what, _describe(exc)) from None
            if response.status_code == 401 and own and not answered:
                response.close()
                self._authenticate(response, what)
                answered = True
                continue
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location and method in ("GET", "HEAD"):
                response.close()
                url = urljoin(url, location)
                continue
            if response.status_code not in expect:
                raise self._status_error(response, what, elsewhere=not own)
            return response
        raise self._error(what, f"more than {_MAX_REDIRECTS} redirects")

    def _status_error(
        self, response: httpx.Response, what: str, elsewhere: bool = False
    ) -> RegistryError:
        import httpx

        with contextlib.suppress(httpx.HTTPError):  # a closed stream: the status must do
            response.read()
        code, message = "", response.text.strip()[:300]
        try:
            errors = response.json().get("errors") or []
            code = errors[0].get("code", "")
            message = errors[0].get("message", "")
        except (ValueError, AttributeError, IndexError):
            pass
        detail = f"HTTP {response.status_code}" + (f" {code}" if code else "")
        detail += f": {message}" if message else ""
        if response.status_code == 401 and elsewhere:
            detail += (
                f" (from {urlsplit(str(response.url)).netloc}, which is not {self.registry}: "
                "the registry's credentials are not sent there)"
            )
        elif response.status_code == 401:
            detail += (
                f" (credentials for {self.registry} come from $DOCKER_CONFIG/config.json or "
                "~/.docker/config.json; none were found)"
                if self.credentials is None
                else f" (the credentials stored for {self.registry} were refused)"
            )
        return self._error(what, detail, response.status_code, code or None)

    def _authenticate(self, response: httpx.Response, what: str) -> None:
        challenge = parse_challenge(response.headers.get("www-authenticate", ""))
        if challenge.scheme == "basic":
            if self.credentials is None:
                raise self._status_error(response, what)
            self._auth = self.credentials.basic()
        elif challenge.scheme == "bearer":
            self._auth = f"Bearer {self._token(challenge, what)}"
        else:
            raise self._status_error(response, what)

    def _token(self, challenge: Challenge, what: str) -> str:
        import httpx

        realm = challenge.params.get("realm")
        if not realm:
            raise self._error(what, "the registry asked for a Bearer token but named no realm")
        scopes = {self.scope, *challenge.params.get("scope", "").split()} - {""}
        query = [("scope", s) for s in sorted(scopes)]
        if "service" in challenge.params:
            query.insert(0, ("service", challenge.params["service"]))
        headers = {"Authorization": self.credentials.basic()} if self.credentials else {}
        try:
            response = self._http.get(f"{realm}?{urlencode(query)}", headers=headers)
        except httpx.HTTPError as exc:
            raise self._error(f"{what} (token from {realm})", _describe(exc)) from None
        if response.status_code != 200:
            raise self._status_error(response, f"{what} (token from {realm})")
        try:
            data = response.json()
            return str(data.get("token") or data["access_token"])
        except (ValueError, KeyError):
            raise self._error(what, f"the token service {realm} sent no token") from None

    # ---- blobs and manifests ------------------------------------------------------------------

    def _path(self, kind: str, ref: str = "") -> str:
        return f"/v2/{self.repository}/{kind}/{ref}"

    def blob_exists(self, digest: str) -> bool:
        what = f"checking blob {digest}"
        response = self.request("HEAD", self._path("blobs", digest), what=what, expect=(200, 404))
        return response.status_code == 200

    def mount_blob(self, digest: str, source: str) -> str | None:
        """Mount `digest` from repository `source`: None when done, else an upload URL to use."""
        query = urlencode({"mount": digest, "from": source})
        response = self.request(
            "POST",
            f"{self._path('blobs', 'uploads/')}?{query}",
            what=f"mounting blob {digest} from {source}",
            expect=(201, 202),
            headers={"Content-Length": "0"},
        )
        return None if response.status_code == 201 else _location(response)

    def upload_blob(
        self,
        digest: str,
        source: Path | bytes,
        *,
        location: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Upload a blob whole (POST then PUT) or, above the chunk size, in PATCH chunks."""
        what = f"uploading blob {digest}"
        size = source.stat().st_size if isinstance(source, Path) else len(source)
        if location is None:
            location = _location(
                self.request(
                    "POST",
                    self._path("blobs", "uploads/"),
                    what=what,
                    expect=(202,),
                    headers={"Content-Length": "0"},
                )
            )
        octets = {"Content-Type": "application/octet-stream"}
        if size > self.chunk_size:
            start = 0
            while start < size:
                end = min(start + self.chunk_size, size)
                headers = {**octets, "Content-Range": f"{start}-{end - 1}"}
                headers["Content-Length"] = str(end - start)
                response = self.request(
                    "PATCH",
                    location,
                    what=f"{what} (bytes {start}-{end - 1})",
                    expect=(202,),
                    headers=headers,
                    body=functools.partial(_pieces, source, start, end, progress),
                )
                location, start = _location(response), end
            body: Body = lambda: b""  # noqa: E731
            headers = {**octets, "Content-Length": "0"}
        else:
            body = lambda: _pieces(source, 0, size, progress)  # noqa: E731
            headers = {**octets, "Content-Length": str(size)}
        sep = "&" if "?" in location else "?"
        self.request(
            "PUT", f"{location}{sep}digest={digest}", what=what, expect=(201,), headers=headers,
            body=body,
        )  # fmt: skip

    def put_manifest(self, tag: str, data: bytes, media_type: str, digest: str) -> None:
        what = f"putting manifest {digest} as {tag}"
        response = self.request(
            "PUT",
            self._path("manifests", tag),
            what=what,
            expect=(201,),
            headers={"Content-Type": media_type},
            body=lambda: data,
        )
        returned = response.headers.get("docker-content-digest")
        if returned and returned != digest:
            raise self._error(what, f"the registry stored it as {returned}")

    def manifest_digest(self, reference: str, media_type: str) -> str | None:
        """The digest of the `media_type` manifest the registry holds as `reference`, or None
        when it holds none (HEAD: nothing is downloaded)."""
        response = self.request(
            "HEAD",
            self._path("manifests", reference),
            what=f"checking manifest {reference}",
            expect=(200, 404),
            headers={"Accept": media_type},
        )
        digest: str | None = response.headers.get("docker-content-digest")
        return digest if response.status_code == 200 else None

    def names_manifest(self, tag: str, media_type: str, digest: str) -> bool:
        """Whether `tag` already names the manifest `digest`. One anonymous HEAD without httpx
        confirms it where it can (quickhead.py); otherwise manifest_digest's HEAD answers."""
        scheme = _schemes(self.registry, self.insecure)[0]
        # not with credentials to present, nor over an insecure registry's unverified TLS
        if self.credentials is None and not (scheme == "https" and self.insecure):
            from .quickhead import manifest_digest

            path = self._path("manifests", tag)
            tls = scheme == "https"
            if manifest_digest(self.registry, path, media_type, tls=tls) == digest:
                return True
        return self.manifest_digest(tag, media_type) == digest

    def get_manifest(self, reference: str, accept: Iterable[str]) -> tuple[bytes, str]:
        """The manifest bytes and media type for a tag or digest."""
        response = self.request(
            "GET",
            self._path("manifests", reference),
            what=f"fetching manifest {reference}",
            expect=(200,),
            headers={"Accept": ", ".join(accept)},
        )
        return response.content, response.headers.get("content-type", "").split(";")[0]

    def get_blob(self, digest: str) -> Iterator[bytes]:
        """The blob's bytes as they arrive (the caller verifies the digest)."""
        import httpx

        what = f"fetching blob {digest}"
        response = self.request(
            "GET", self._path("blobs", digest), what=what, expect=(200,), stream=True
        )
        try:
            yield from response.iter_bytes(_PIECE)
        except httpx.HTTPError as exc:
            raise self._error(what, _describe(exc)) from None
        finally:
            response.close()


def _schemes(registry: str, insecure: bool) -> list[str]:
    """The schemes to try, in order: plain HTTP for loopback, else HTTPS then, if insecure,
    plain HTTP."""
    if is_loopback(registry):
        return ["http"]
    return ["https", "http"] if insecure else ["https"]


def _location(response: httpx.Response) -> str:
    """The response's Location, made absolute against the URL that gave it: a relative one
    from an upload host elsewhere stays there."""
    if "location" not in response.headers:
        raise RegistryError(f"{response.url}: the registry answered with no Location to go on at")
    return urljoin(str(response.url), response.headers["location"])


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of `url`, default ports filled in: what credentials are bound to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    except ValueError:  # a port that is no number: the same origin as nothing
        return ("", "", -1)
    return scheme, (parts.hostname or "").lower(), port


def _pieces(
    source: Path | bytes, start: int, end: int, progress: Callable[[int], None] | None
) -> Iterator[bytes]:
    """Bytes start..end of `source`, a piece at a time, reported as they are handed over."""
    if isinstance(source, bytes):
        stops = range(start, end, _PIECE)
        pieces: Iterable[bytes] = (source[i : min(i + _PIECE, end)] for i in stops)
    else:
        pieces = _file_pieces(source, start, end)
    for piece in pieces:
        yield piece
        if progress is not None:
            progress(len(piece))


def _file_pieces(path: Path, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        while start < end:
            piece = f.read(min(_PIECE, end - start))
            if not piece:
                raise ExecutionError(f"{path} is shorter than its recorded size")
            start += len(piece)
            yield piece


def _describe(exc: Exception) -> str:
    """An httpx error as a short sentence: what kind of failure, and its reason."""
    kind = {
        "ConnectError": "could not connect",
        "ConnectTimeout": "timed out connecting",
        "ReadTimeout": "timed out waiting for an answer",
        "RemoteProtocolError": "the connection was closed",
        "ReadError": "the connection broke while reading",
        "WriteError": "the connection broke while sending",
    }.get(type(exc).__name__, type(exc).__name__)
    return f"{kind} ({exc or type(exc).__name__})"
