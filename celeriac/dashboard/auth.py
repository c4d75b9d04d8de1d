"""Who may look and who may act: the login, password hashes, signed sessions and CSRF tokens.

Only the standard library: passwords are hashed with scrypt (``scrypt$n$r$p$salt$hash``),
and Django's ``pbkdf2_sha256$iterations$salt$hash`` is accepted too, so a hash copied from
a Django user works. A session is a cookie signed with HMAC-SHA256 holding the user (or
nobody) and the CSRF token that every form of that browser carries back.

In a Django project without a dashboard login of its own, the login form asks Django:
any active staff user may act (``DjangoStaffLogin``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import Celery

USER_ENV = "CELERIAC_DASHBOARD_USER"
HASH_ENV = "CELERIAC_DASHBOARD_PASSWORD_HASH"
SECRET_ENV = "CELERIAC_DASHBOARD_SECRET"
SESSION_COOKIE = "celeriac_dashboard"
SESSION_SECONDS = 12 * 3600

# scrypt's cost: 2**14 x 8 x 128 bytes = 16 MiB and about 50 ms a check, OpenSSL's limit
# (32 MiB) left alone.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

HOW_TO_SET = (
    f"set {USER_ENV} and {HASH_ENV} (make the hash with `celeriac dashboard hash-password`), "
    "or dashboard_user and dashboard_password_hash in the app's settings"
)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A scrypt hash of ``password`` to keep in settings: ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def check_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (scrypt, or Django's pbkdf2_sha256); False if malformed."""
    try:
        kind, *parts = encoded.strip().split("$")
        if kind == "scrypt":
            n, r, p, salt, digest = parts
            expected = base64.b64decode(digest)
            got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                 dklen=len(expected), maxmem=2 * 128 * int(n) * int(r) + 1024 * 1024)
        elif kind == "pbkdf2_sha256":
            iterations, salt, digest = parts
            expected = base64.b64decode(digest)
            got = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations),
                                      dklen=len(expected))
        else:
            return False
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def is_loopback(address: str) -> bool:
    if address in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


# --- who logs in -----------------------------------------------------------------------


class Login:
    """Checks a user name and password; ``describe()`` says where the accounts come from."""

    async def check(self, user: str, password: str) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass
class PasswordLogin(Login):
    """One user with a password hash, from settings or the environment."""

    user: str
    password_hash: str

    async def check(self, user: str, password: str) -> bool:
        import asyncio

        # scrypt takes ~50 ms of CPU: off the event loop. Both compared whatever the name.
        matches = await asyncio.to_thread(check_password, password, self.password_hash)
        return hmac.compare_digest(user.encode(), self.user.encode()) and bool(matches)

    def describe(self) -> str:
        return f"the dashboard user {self.user!r}"


class DjangoStaffLogin(Login):
    """Django's users: any active staff user may log in (checked by Django's auth backends)."""

    async def check(self, user: str, password: str) -> bool:
        from asgiref.sync import sync_to_async

        return bool(await sync_to_async(_django_staff, thread_sensitive=True)(user, password))

    def describe(self) -> str:
        return "Django's staff users"


def _django_staff(user: str, password: str) -> bool:
    from django.contrib.auth import authenticate
    from django.db import close_old_connections

    close_old_connections()
    try:
        found = authenticate(username=user, password=password)
        return found is not None and bool(found.is_active and found.is_staff)
    finally:
        close_old_connections()


def login_from_settings(app: Celery) -> Login | None:
    """The login the app's settings or the environment configure, else Django's staff users
    when Django's auth is installed, else None (nobody can act)."""
    user = os.environ.get(USER_ENV) or app.settings.dashboard_user
    password_hash = os.environ.get(HASH_ENV) or app.settings.dashboard_password_hash
    if user and password_hash:
        return PasswordLogin(user, password_hash)
    if _django_auth_installed():
        return DjangoStaffLogin()
    return None


def _django_auth_installed() -> bool:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return False
    try:
        from django.apps import apps
    except ImportError:
        return False
    return bool(apps.ready and apps.is_installed("django.contrib.auth"))


# --- sessions --------------------------------------------------------------------------


@dataclass
class Session:
    """What the signed cookie holds: the user (None before login) and the CSRF token."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user: str | None = None
    expires: float = field(default_factory=lambda: time.time() + SESSION_SECONDS)
    is_new: bool = False


class Signer:
    def __init__(self, secret: str | bytes | None = None) -> None:
        secret = secret or os.environ.get(SECRET_ENV) or secrets.token_bytes(32)
        self.key = secret.encode() if isinstance(secret, str) else secret

    def dumps(self, session: Session) -> str:
        payload = _unpadded(json.dumps({"c": session.csrf, "u": session.user, "e": int(session.expires)},
                                       separators=(",", ":")).encode())
        return f"{payload.decode()}.{self._sign(payload)}"

    def loads(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        payload, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(payload.encode())):
            return None
        try:
            data: dict[str, Any] = json.loads(_padded(payload))
            session = Session(csrf=str(data["c"]), user=data.get("u"), expires=float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def sign_text(self, text: str) -> str:
        payload = _unpadded(text.encode())
        return f"{payload.decode()}.{self._sign(payload)}"

    def unsign_text(self, signed: str | None) -> str | None:
        if not signed or "." not in signed:
            return None
        payload, _, signature = signed.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(payload.encode())):
            return None
        try:
            return _padded(payload).decode()
        except (ValueError, UnicodeDecodeError):
            return None

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self.key, payload, hashlib.sha256).digest()).decode().rstrip("=")


def _unpadded(data: bytes) -> bytes:
    """URL-safe base64 without '=', so the cookie value needs no quotes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _padded(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))


@dataclass
class Policy:
    """The dashboard's rules: who logs in, and whether viewing needs a login."""

    login: Login | None
    open_viewing: bool = False
    signer: Signer = field(default_factory=Signer)

    @property
    def can_act(self) -> bool:
        return self.login is not None

    def may_view(self, session: Session) -> bool:
        return self.login is None or self.open_viewing or session.user is not None

    def may_act(self, session: Session) -> bool:
        return self.login is not None and session.user is not None

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and not session.is_new and hmac.compare_digest(str(token), session.csrf)

    async def basic_user(self, header: str | None) -> str | None:
        """The user named by an ``Authorization: Basic`` header (for /metrics and /api), if right."""
        if self.login is None or not header or not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user if await self.login.check(user, password) else None

