"""Access tokens: each belongs to one user; a player token reads and writes, an overlay token only reads. Only a
token's SHA-256 digest is stored (in the memory store, so every instance sharing it knows the same tokens); the
token itself is shown once, when it is made."""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

from kibitz.memory.store import MemoryStore

Scope = Literal["player", "overlay"]
PREFIX = {"player": "kbz_", "overlay": "kbzo_"}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue(store: MemoryStore, user: str, scope: Scope) -> str:
    """A new token for `user`; only its digest is kept."""
    token = PREFIX[scope] + secrets.token_urlsafe(24)
    store.add_token(digest(token), user, scope)
    return token


def owner(store: MemoryStore, token: str) -> tuple[str, Scope] | None:
    """(user, scope) of a valid token, or None."""
    if not token or len(token) > 200:
        return None
    found = store.token_owner(digest(token))
    if found is None or found[1] not in PREFIX:
        return None
    return found[0], found[1]  # type: ignore[return-value]
