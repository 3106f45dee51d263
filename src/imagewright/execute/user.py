"""USER: run a sandboxed command as the image's user instead of root.

The user is resolved inside the sandbox, from the image's own /etc/passwd and /etc/group (via
getent), so names mean what they mean in the image; setpriv (util-linux, essential in Debian)
then drops to that uid, gid and the user's groups before exec'ing the command. HOME becomes
the user's home unless the image's ENV sets it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..definition.config import ImageConfig

__all__ = ["UNKNOWN_USER", "as_user"]

UNKNOWN_USER = 125  # the exit status when the user or group is not in the image

# $1 is USER's value (name or uid, optionally :group or :gid); the rest is the command.
_SCRIPT = r"""
spec=$1; shift
user=${spec%%:*}; group=
case $spec in *:*) group=${spec#*:} ;; esac
if entry=$(getent passwd "$user"); then
  groups=--init-groups
else
  case $user in
    ''|*[!0-9]*) echo "imagewright: USER $spec: no user '$user' in the image" >&2
                 exit 125 ;;
  esac
  entry="$user:x:$user:0::/:"; groups=--clear-groups  # Docker allows a bare uid
fi
uid=$(echo "$entry" | cut -d: -f3); gid=$(echo "$entry" | cut -d: -f4)
home=$(echo "$entry" | cut -d: -f6)
if [ -n "$group" ]; then
  case $group in
    *[!0-9]*) gid=$(getent group "$group" | cut -d: -f3)
              if [ -z "$gid" ]; then
                echo "imagewright: USER $spec: no group '$group' in the image" >&2
                exit 125
              fi ;;
    *) gid=$group ;;
  esac
fi
export HOME="${HOME:-${home:-/}}"
exec setpriv --reuid="$uid" --regid="$gid" $groups -- "$@"
"""


def as_user(argv: Sequence[str], user: str) -> list[str]:
    """`argv` wrapped to run as `user` (USER's value), or unchanged for root."""
    if ImageConfig(user=user).runs_as_root:
        return list(argv)
    return ["/bin/sh", "-c", _SCRIPT, "sh", user, *argv]
