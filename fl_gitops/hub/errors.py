"""The hub's errors: what a failed read of the OCM hub means for the caller.

Both hubs (Kubernetes and local) raise these, so the reconcile pass handles one family
whichever hub it was given. The classes say how to react, the way kopf separates
temporary from permanent errors and httpx maps transport errors at its boundary:

    HubError                       (fl_gitops.errors)
    ├── HubNotFound                the object (or its API) is not there
    ├── HubConflict                a write lost a race (409); read again and retry
    ├── HubForbidden               401/403: the credentials or the RBAC are wrong
    ├── HubUnavailable             the API server is down, overloaded or slow: retry later
    └── HubConfigError             no usable kubeconfig, or a value that cannot be sent
                                   (also an ``InputError``: the CLI exits 2)

Messages name the operation and the object, carry the HTTP status and at most a short,
redacted excerpt of the server's message: never headers, never a whole body.
"""

from __future__ import annotations

import re

from fl_gitops.errors import HubError, InputError

__all__ = [
    "MAX_DETAIL",
    "HubConfigError",
    "HubConflict",
    "HubError",
    "HubForbidden",
    "HubNotFound",
    "HubUnavailable",
    "trim_detail",
]

# The longest excerpt of a server message that goes into an error.
MAX_DETAIL = 300

# Credentials that could appear in a server message or a URL: bearer tokens, basic-auth
# user info, and key=value pairs whose key names a secret.
_SECRETS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 <redacted>"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1<redacted>@"),
    (
        re.compile(r"(?i)\b(token|password|passwd|secret|api[_-]?key)([\"']?\s*[:=]\s*)\S+"),
        r"\1\2<redacted>",
    ),
)


def trim_detail(text: object, limit: int = MAX_DETAIL) -> str:
    """One line of at most ``limit`` characters, with credentials redacted.

    Args:
        text: a server message, condition message or exception text.
        limit: the longest result; longer text is cut and ends with "...".

    Returns:
        The cleaned text ("" for None).
    """
    if text is None:
        return ""
    line = " ".join(str(text).split())
    for pattern, replacement in _SECRETS:
        line = pattern.sub(replacement, line)
    if len(line) > limit:
        line = line[: max(limit - 3, 0)].rstrip() + "..."
    return line


class HubNotFound(HubError):
    """The object, its namespace or its API (the CRD) does not exist on the hub."""


class HubConflict(HubError):
    """A write conflicted with another writer (HTTP 409): read again, then retry."""


class HubForbidden(HubError):
    """The hub refused the credentials (401) or the RBAC does not allow the call (403)."""


class HubUnavailable(HubError):
    """The hub could not answer now: connection refused, timeout, 429 or 5xx.

    Temporary: the next reconcile pass should try again. ``delay`` is the server's
    Retry-After in seconds when it sent one.
    """

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        self.delay = delay
        super().__init__(message)


class HubConfigError(HubError, InputError):
    """The hub cannot be used as asked: no kubeconfig or context, or a bad selector value."""
