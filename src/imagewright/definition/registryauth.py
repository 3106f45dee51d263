"""Which kind of registry auth a from_registry secret carries, by its keys, as Modal decides it.

A secret's keys choose the auth type: AWS ECR (access keys or a role ARN, with a region), GCP
Artifact Registry (a service-account JSON) or plain username/password. `from_registry` takes
the one set that matches; `from_aws_ecr` and `from_gcp_artifact_registry` force theirs. A
secret matching no rule (or several, for from_registry) is an InvalidError listing the rules.
Turning the keys into credentials happens at plan time (`registry.auth.secret_credentials`).
"""

from __future__ import annotations

from ..exception import InvalidError
from ..secret import Secret

__all__ = ["AUTH_KINDS", "registry_auth"]

# kind -> the key sets that satisfy it (any one of them)
AUTH_KINDS: dict[str, tuple[frozenset[str], ...]] = {
    "aws": (
        frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}),
        frozenset({"AWS_ROLE_ARN", "AWS_REGION"}),
    ),
    "gcp": (frozenset({"SERVICE_ACCOUNT_JSON"}),),
    "basic": (frozenset({"REGISTRY_USERNAME", "REGISTRY_PASSWORD"}),),
}
_RULES = {
    "aws": "AWS ECR: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION (optionally "
    "AWS_SESSION_TOKEN), or AWS_ROLE_ARN and AWS_REGION",
    "gcp": "GCP Artifact Registry: SERVICE_ACCOUNT_JSON",
    "basic": "any other registry: REGISTRY_USERNAME and REGISTRY_PASSWORD",
}


def registry_auth(secret: Secret | None, forced: str | None, method: str) -> str:
    """The auth kind ("aws", "gcp", "basic") for `secret`, or "" when there is no secret.

    `forced` is the kind `method` requires (None: decided by the keys).
    Raises InvalidError when the keys satisfy no rule, or more than one.
    """
    if secret is None and forced is None:
        return ""
    keys = set(secret.env) if secret is not None else set()
    candidates = [forced] if forced else list(AUTH_KINDS)
    matched = [k for k in candidates if any(rule <= keys for rule in AUTH_KINDS[k])]
    if len(matched) == 1:
        return matched[0]
    rules = "; ".join(_RULES[k] for k in candidates)
    found = ", ".join(sorted(keys)) or "no secret"
    problem = "matches several auth types" if matched else "does not match"
    raise InvalidError(
        f"{method}(secret=...) needs a Secret holding the keys of one registry auth type "
        f"({rules}); the given keys ({found}) {problem}."
    )
