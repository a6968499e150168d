"""The config repo: clone or fetch, write a round, commit if changed, push with retry, PRs.

The only way to Git, for the reconcile job, the rollback and the simulation's own bare
remote (``BareRepo``). Everything public is re-exported here; the modules
behind it are private.
"""

from fl_gitops.gitops._audit import AuditCommit, HistoryReader, Signature
from fl_gitops.gitops._bare import BareRepo
from fl_gitops.gitops._commit import (
    ROUND_TRAILER,
    Change,
    CommitInfo,
    commit_message,
    parse_trailers,
    round_trailers,
)
from fl_gitops.gitops._credentials import CREDENTIALS_DIR_ENV, Credentials, redact
from fl_gitops.gitops._forge import (
    FORGE_TOKEN_DIR_ENV,
    FORGE_TOKEN_ENV,
    FORGES,
    PullRequest,
    PullRequestSpec,
    ensure_pull_request,
)
from fl_gitops.gitops._names import round_branch_name
from fl_gitops.gitops._repo import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_NETWORK_TIMEOUT,
    DEFAULT_USER_EMAIL,
    DEFAULT_USER_NAME,
    MODES,
    ConfigRepo,
    PublishHooks,
    PublishResult,
    default_backoff,
    remember_signing_key,
)
from fl_gitops.gitops._signing import (
    SIGNING_KEY_ENV,
    SigningKey,
    generate_signing_key,
    write_allowed_signers,
)

__all__ = [
    "CREDENTIALS_DIR_ENV",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_NETWORK_TIMEOUT",
    "DEFAULT_USER_EMAIL",
    "DEFAULT_USER_NAME",
    "FORGES",
    "FORGE_TOKEN_DIR_ENV",
    "FORGE_TOKEN_ENV",
    "MODES",
    "ROUND_TRAILER",
    "SIGNING_KEY_ENV",
    "AuditCommit",
    "BareRepo",
    "Change",
    "CommitInfo",
    "ConfigRepo",
    "Credentials",
    "HistoryReader",
    "PublishHooks",
    "PublishResult",
    "PullRequest",
    "PullRequestSpec",
    "Signature",
    "SigningKey",
    "commit_message",
    "default_backoff",
    "ensure_pull_request",
    "generate_signing_key",
    "parse_trailers",
    "redact",
    "remember_signing_key",
    "round_branch_name",
    "round_trailers",
    "write_allowed_signers",
]
