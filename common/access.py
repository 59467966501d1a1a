"""Who may do what: the two roles, the `--auth` users, and the check every service runs.

Gradio has no roles, and a hidden event can still be called by its index, so hiding a button is not a
check: each service method behind an event calls `Access.require(user, Role.X)` with the login from
`gr.Request.username` (None when the server runs without `--auth`, and for the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from common.errors import PermissionDeniedError, UserInputError


class Role(StrEnum):
    """`annotator`: label, arena votes, own stats. `admin`: everything else."""

    ANNOTATOR = "annotator"
    ADMIN = "admin"


ROLES = tuple(r.value for r in Role)


@dataclass(frozen=True)
class User:
    name: str
    password: str = field(repr=False)  # never printed, logged or stored
    role: Role


@dataclass(frozen=True)
class Access:
    """The users of a serving process; without users (no `--auth`, or the CLI) the one local user is admin."""

    users: tuple[User, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def gradio_auth(self) -> list[tuple[str, str]] | None:
        """What `launch(auth=...)` takes."""
        return [(u.name, u.password) for u in self.users] or None

    def role(self, username: str | None) -> Role | None:
        """The role of a login; None for an unknown login while auth is on."""
        if not self.enabled:
            return Role.ADMIN
        for u in self.users:
            if u.name == username:
                return u.role
        return None

    def require(self, username: str | None, role: Role) -> str | None:
        """Raise PermissionDeniedError unless `username` holds `role` (admin holds every role)."""
        have = self.role(username)
        if have is None or (role is Role.ADMIN and have is not Role.ADMIN):
            raise PermissionDeniedError(f"this needs the {role.value} role; ask an admin")
        return username

    def identity(self, username: str | None, typed: str | None) -> str:
        """The name labels and votes are stored under: the login when there is one, else the typed name."""
        if self.enabled:
            if username is None or self.role(username) is None:
                raise PermissionDeniedError("log in first")
            return username
        return (typed or "").strip()


def parse_auth(value: str | None) -> Access:
    """`--auth USER:PASS` (one admin) or a FILE of `USER:PASS[:ROLE]` lines (no role: annotator)."""
    if not value:
        return Access()
    path = Path(value)
    if not path.is_file():
        user, sep, password = value.partition(":")
        if not sep or not user or not password:
            raise UserInputError("--auth: expected USER:PASS or a users file")
        return Access((User(user, password, Role.ADMIN),))
    users: list[User] = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, rest = line.partition(":")
        if not sep or not user or not rest:
            # Only the file and line: the line itself holds a password.
            raise UserInputError(f"{path}:{n}: expected USER:PASS[:ROLE]")
        password, role = rest, Role.ANNOTATOR
        head, sep, last = rest.rpartition(":")
        if sep and last in ROLES:
            password, role = head, Role(last)
        if not password:
            raise UserInputError(f"{path}:{n}: expected USER:PASS[:ROLE]")
        if any(u.name == user for u in users):
            raise UserInputError(f"{path}:{n}: user {user!r} appears twice")
        users.append(User(user, password, role))
    if not users:
        raise UserInputError(f"--auth {path}: no USER:PASS entries")
    return Access(tuple(users))
