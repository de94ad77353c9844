"""People: accounts, roles, passwords, browser sessions and the first admin's set-up link."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, false, func, or_, select, update
from sqlalchemy.orm import Session

from kennel.db.base import utcnow
from kennel.errors import Conflict, Forbidden, Invalid, NotFound
from kennel.keys.models import ApiKey
from kennel.keys.service import Actor
from kennel.people.models import SetupToken, SignInFailure, User, WebSession
from kennel.people.roles import ROLES

# argon2id with the library's defaults (RFC 9106's second recommended set: 64 MiB, 3 passes).
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that case takes as long as a wrong password.
    Made on first use: hashing takes ~110 ms, which every `kennel` command and server start paid."""
    return _hasher.hash("not a password anyone has")


USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
SIGN_IN_FAILED = "wrong user name or password, or the account cannot sign in"
# After this many failures for one account or one address, each further attempt waits twice as long as
# the one before (from 1 s up to 15 min) before it is even checked.
FREE_FAILURES = 5
MAX_DELAY = timedelta(minutes=15)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise Invalid("a user name is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit",
                      pointer="/username")
    return username


def _check_email(email: str | None) -> str | None:
    if email is None or email == "":
        return None
    email = email.strip().lower()
    if not EMAIL.match(email) or len(email) > 320:
        raise Invalid(f"{email!r} is not an email address", pointer="/email")
    return email


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"a password needs at least {MIN_PASSWORD} characters", pointer="/password")
    return password


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}; use one of: {', '.join(ROLES)}", pointer="/role")
    return role


def user_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def create_user(session: Session, *, username: str, email: str | None, role: str, password: str) -> User:
    username, email, role = _check_username(username), _check_email(email), _check_role(role)
    _check_password(password)
    taken = session.scalars(select(User).where(or_(func.lower(User.username) == username.lower(),
                                                   User.email == email if email else false()))).first()
    if taken is not None:
        what = "user name" if taken.username.lower() == username.lower() else "email"
        raise Conflict(f"the {what} is taken by user {taken.username}", pointer=f"/{what.replace(' ', '')}")
    user = User(username=username, email=email, role=role, password_hash=_hasher.hash(password))
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.pk)))


def get_user(session: Session, *, who: str) -> User:
    """By user name (any case), email or id."""
    user = session.scalars(select(User).where(or_(func.lower(User.username) == who.lower(),
                                                  User.email == who.strip().lower(), User.id == who))).first()
    if user is None:
        raise NotFound(f"no user {who!r} (give a user name, email or id)")
    return user


def _admins_left(session: Session, excluding: User) -> int:
    return session.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.disabled_at.is_(None), User.pk != excluding.pk)) or 0


def set_role(session: Session, *, who: str, role: str) -> User:
    user = get_user(session, who=who)
    role = _check_role(role)
    if user.role == "admin" and role != "admin" and _admins_left(session, user) == 0:
        raise Conflict(f"{user.username} is the last active admin; make someone else admin first")
    user.role = role
    session.flush()
    return user


def disable_user(session: Session, *, who: str) -> User:
    """Disable an account: its sessions end now and its key pairs stop working (they are checked against
    the user on every request)."""
    user = get_user(session, who=who)
    if user.role == "admin" and user.disabled_at is None and _admins_left(session, user) == 0:
        raise Conflict(f"{user.username} is the last active admin; make someone else admin first")
    now = utcnow()
    if user.disabled_at is None:
        user.disabled_at = now
    end_sessions(session, user_pk=user.pk, now=now)
    session.flush()
    return user


def enable_user(session: Session, *, who: str) -> User:
    user = get_user(session, who=who)
    user.disabled_at = None
    session.flush()
    return user


def set_password(session: Session, *, who: str, password: str) -> User:
    user = get_user(session, who=who)
    user.password_hash = _hasher.hash(_check_password(password))
    # A new password signs every browser out: the old one may be what leaked.
    end_sessions(session, user_pk=user.pk, now=utcnow())
    session.flush()
    return user


def actor_of(user: User, *, key_id: str | None = None) -> Actor:
    return Actor(id=user.id, name=user.username, role=user.role, email=user.email, user_pk=user.pk, key_id=key_id)


def keys_of(session: Session, *, user_pk: int | None, include_revoked: bool = False) -> list[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.user_pk == user_pk if user_pk is not None else ApiKey.user_pk.is_(None))
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(stmt.order_by(ApiKey.pk)))


# Sign-in ------------------------------------------------------------------------------------------

def _delay(failures: int) -> timedelta:
    if failures < FREE_FAILURES:
        return timedelta(0)
    return min(MAX_DELAY, timedelta(seconds=2 ** (failures - FREE_FAILURES)))


def _failures(session: Session, subjects: list[str]) -> list[SignInFailure]:
    return list(session.scalars(select(SignInFailure).where(SignInFailure.subject.in_(subjects))))


@dataclass(frozen=True)
class SignIn:
    user: User | None
    retry_after: int = 0  # seconds, when sign-in is slowed for this account or address


def check_password(session: Session, *, login: str, password: str, address: str) -> SignIn:
    """The user these credentials sign in, or none. Every kind of failure looks the same to the caller;
    each one is counted against the account and the address."""
    subjects = [f"user:{login.strip().lower()[:300]}", f"addr:{address[:300]}"]
    now = utcnow()
    for row in _failures(session, subjects):
        wait = row.last_failure_at + _delay(row.failures) - now
        if wait > timedelta(0):
            return SignIn(None, retry_after=max(1, int(wait.total_seconds() + 0.999)))
    user = session.scalars(select(User).where(or_(func.lower(User.username) == login.strip().lower(),
                                                  User.email == login.strip().lower()))).first()
    ok = False
    try:
        ok = _hasher.verify(user.password_hash if user else _dummy_hash(), password) and user is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if ok and user is not None and user.disabled_at is None:
        session.execute(delete(SignInFailure).where(SignInFailure.subject == subjects[0]))
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        return SignIn(user)
    known = {row.subject: row for row in _failures(session, subjects)}
    for subject in subjects:
        failure = known.get(subject)
        if failure is None:
            session.add(SignInFailure(subject=subject, failures=1, last_failure_at=now))
        else:
            failure.failures += 1
            failure.last_failure_at = now
    session.flush()
    return SignIn(None)


# Browser sessions ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str


@dataclass(frozen=True)
class SessionLimits:
    idle: timedelta
    absolute: timedelta


def start_session(session: Session, *, user: User) -> NewSession:
    """A new session id at every sign-in (never one the browser brought along)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=digest(token), user_pk=user.pk, csrf_token=csrf))
    session.flush()
    return NewSession(token, csrf)


@dataclass(frozen=True)
class Signed:
    actor: Actor
    csrf_token: str


def resume_session(session: Session, *, token: str, limits: SessionLimits) -> Signed | None:
    """The person a session cookie signs in, if the session is live; touches its idle clock."""
    row = session.execute(
        select(WebSession, User).join(User, User.pk == WebSession.user_pk)
        .where(WebSession.token_hash == digest(token), WebSession.ended_at.is_(None))
    ).first()
    if row is None:
        return None
    web, user = row
    now = utcnow()
    if user.disabled_at is not None or now - web.last_seen_at > limits.idle or now - web.created_at > limits.absolute:
        return None
    # Written at most once a minute, so reads stay reads.
    if now - web.last_seen_at > timedelta(minutes=1):
        session.execute(update(WebSession).where(WebSession.pk == web.pk).values(last_seen_at=now))
    return Signed(actor_of(user), web.csrf_token)


def end_session(session: Session, *, token: str) -> None:
    session.execute(update(WebSession).where(WebSession.token_hash == digest(token), WebSession.ended_at.is_(None))
                    .values(ended_at=utcnow()))


def end_sessions(session: Session, *, user_pk: int, now: datetime) -> None:
    session.execute(update(WebSession).where(WebSession.user_pk == user_pk, WebSession.ended_at.is_(None))
                    .values(ended_at=now))


# The first admin ----------------------------------------------------------------------------------

def issue_setup_token(session: Session) -> str | None:
    """A one-time token that creates the first admin, while there is no user; earlier ones stop working."""
    if user_count(session):
        return None
    session.execute(update(SetupToken).where(SetupToken.used_at.is_(None)).values(used_at=utcnow()))
    token = secrets.token_urlsafe(24)
    session.add(SetupToken(token_hash=digest(token)))
    session.flush()
    return token


def setup_token_valid(session: Session, *, token: str) -> bool:
    return user_count(session) == 0 and session.scalar(select(func.count()).select_from(SetupToken).where(
        SetupToken.token_hash == digest(token), SetupToken.used_at.is_(None))) == 1


def create_first_admin(session: Session, *, token: str, username: str, email: str | None, password: str) -> User:
    taken = session.execute(update(SetupToken).where(SetupToken.token_hash == digest(token),
                                                     SetupToken.used_at.is_(None)).values(used_at=utcnow()))
    if taken.rowcount != 1 or user_count(session):  # type: ignore[attr-defined]
        raise Forbidden("this set-up link has been used or replaced: an admin exists already (sign in), or "
                        "restart the server for a new link")
    return create_user(session, username=username, email=email, role="admin", password=password)


def key_counts(session: Session) -> dict[int, int]:
    """Active key pairs per user, for the people page (one grouped query)."""
    rows = session.execute(select(ApiKey.user_pk, func.count()).where(
        ApiKey.revoked_at.is_(None), ApiKey.user_pk.is_not(None)).group_by(ApiKey.user_pk)).tuples().all()
    return {pk: n for pk, n in rows if pk is not None}
