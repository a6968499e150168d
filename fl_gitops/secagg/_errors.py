"""What secure aggregation refuses: a round it cannot unmask, a message that is not one."""

from __future__ import annotations

from fl_gitops.errors import FlGitopsError

__all__ = ["BadMessage", "NotEnoughShares", "SecAggError"]


class SecAggError(FlGitopsError):
    """Secure aggregation could not go on; nothing of any update was unmasked."""


class NotEnoughShares(SecAggError):
    """Too many clusters dropped: a secret needed for the sum has fewer than the threshold
    of shares. The round fails (or retries) by the completion policy; the masked inputs
    stay masked."""


class BadMessage(SecAggError):
    """A protocol message that does not decrypt, does not parse, or is not for this round,
    cluster or pair. Its content is never shown."""
