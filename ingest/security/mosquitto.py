"""Mosquitto 2 broker credentials: the ``password_file`` and ``acl_file`` the broker reads.

Password entries use the format Mosquitto 2 writes itself (``mosquitto_passwd``, PBKDF2-SHA512):
``user:$7$<iterations>$<base64 salt>$<base64 hash>``. The files are written here rather than by
running ``mosquitto_passwd -b``, which would put the password on a command line that every local
user can read in the process table; the tests check that the broker accepts what is written.

The ACL file is kept as blocks, one per MQTT user (``user NAME`` followed by its ``topic``
lines); anything before the first block (comments, ``pattern`` rules) is kept as it is. Both files
are rewritten atomically (temporary file + rename) under an exclusive lock, so concurrent
provisioning cannot lose an entry. The broker rereads both files on SIGHUP.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ingest.errors import IngestError

#: Mosquitto 2's own default; the passwords generated here are 192-bit random, so more rounds
#: would only slow down every CONNECT without making a guess any more likely.
PBKDF2_ITERATIONS: Final = 101
_SALT_BYTES: Final = 12
USERNAME_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
DEVICE_ID_RE: Final = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_HEADER: Final = (
    "# Mosquitto acl_file. Blocks below are managed by 'rpm-ingest devices provision':\n"
    "# each MQTT user may only publish its own device's readings topic.\n"
)


class CredentialFileError(IngestError):
    """A broker password or ACL file cannot be read, parsed or written."""


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The Mosquitto 2 ``$7$`` (PBKDF2-SHA512) encoding of ``password``."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches a ``$7$`` entry (the check the broker makes)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def new_password() -> str:
    return secrets.token_urlsafe(24)


def check_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise CredentialFileError(
            f"MQTT username {username!r} must be 1-64 characters of A-Z a-z 0-9 . _ -"
            " (Mosquitto's password file cannot hold ':'; pass --username for such a device)"
        )
    return username


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise CredentialFileError(f"device id {device_id!r} is not 1-64 characters of A-Z a-z 0-9 . _ : -")
    return device_id


# --- files ---------------------------------------------------------------------------------


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for changing ``path`` (and its companion files)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CredentialFileError(f"cannot lock {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialFileError(f"cannot read {path}: {exc}") from None


def _write_atomically(path: Path, text: str) -> None:
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CredentialFileError(f"cannot write {path}: {exc.strerror}") from None


# --- password file -------------------------------------------------------------------------


def read_passwords(path: Path) -> dict[str, str]:
    """``username -> encoded hash`` of a password file (missing file = empty)."""
    entries: dict[str, str] = {}
    for number, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if not sep or not user:
            raise CredentialFileError(f"{path}:{number}: not a 'user:hash' line")
        entries[user] = encoded
    return entries


def _format_passwords(entries: dict[str, str]) -> str:
    return "".join(f"{user}:{encoded}\n" for user, encoded in entries.items())


# --- ACL file ------------------------------------------------------------------------------


@dataclass
class AclFile:
    """An ACL file as its free-form head and one block of lines per user."""

    head: list[str]
    users: dict[str, list[str]]

    @classmethod
    def parse(cls, text: str) -> AclFile:
        head: list[str] = []
        users: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in text.splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == "user":
                current = users.setdefault(words[1], [])
                continue
            if current is None:
                head.append(line)
            elif line.strip():
                current.append(line)
        return cls(head, users)

    def render(self) -> str:
        head = "\n".join(self.head).rstrip("\n") or _HEADER.rstrip("\n")
        blocks = [
            f"user {user}\n" + "".join(f"{line}\n" for line in lines) for user, lines in self.users.items()
        ]
        return head + "\n\n" + "\n".join(blocks)


def device_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{check_device_id(device_id)}/readings"


# --- operations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    password_file: Path
    acl_file: Path


def set_user(files: BrokerFiles, username: str, password: str, acl_lines: Sequence[str]) -> None:
    """Create or replace ``username``'s password and ACL block."""
    check_username(username)
    if not password:
        raise CredentialFileError("the password is empty")
    with locked(files.password_file):
        passwords = read_passwords(files.password_file)
        passwords[username] = hash_password(password)
        acl = AclFile.parse(_read(files.acl_file))
        acl.users[username] = list(acl_lines)
        _write_atomically(files.acl_file, acl.render())
        _write_atomically(files.password_file, _format_passwords(passwords))


def remove_user(files: BrokerFiles, username: str) -> bool:
    """Remove ``username`` from both files; False when it was in neither."""
    with locked(files.password_file):
        passwords = read_passwords(files.password_file)
        acl = AclFile.parse(_read(files.acl_file))
        found = passwords.pop(username, None) is not None
        found = acl.users.pop(username, None) is not None or found
        if found:
            _write_atomically(files.password_file, _format_passwords(passwords))
            _write_atomically(files.acl_file, acl.render())
        return found


def device_acl(prefix: str, device_id: str, publishes_for: Sequence[str] = ()) -> list[str]:
    """A device (or home gateway) may publish its own readings topic and those it relays; nothing else."""
    own = device_topic(prefix, device_id)
    topics = dict.fromkeys([own, *(device_topic(prefix, d) for d in publishes_for)])
    return [f"topic write {topic}" for topic in topics]


def service_acl(prefix: str) -> list[str]:
    """The ingest service subscribes to every device's readings topic (also as a shared subscription)."""
    return [f"topic read {prefix}/+/readings"]


def monitor_acl() -> list[str]:
    """A health check may read the broker's uptime; no readings, no publishing."""
    return ["topic read $SYS/broker/uptime"]
