"""How a roster teacher looks as a Moodle user: username, e-mail, names and custom profile fields.

The ID number is personal data: it reaches Moodle (as the user's idnumber) only when the settings say
so. The default username is a keyed hash of it, so the same teacher always gets the same account
(which lets a re-run adopt an account a crashed run created) without the number being readable.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from typing import Any

from creditbridge import CreditbridgeError
from creditbridge.settings.model import SyncSettings
from creditbridge.sync.records import RosterRow

# Column (as the provincial export heads it) that a Moodle complaint about a user field points at.
FIELD_COLUMNS = {"email": "邮箱", "username": "身份证号", "idnumber": "身份证号", "teacher_code": "教师编号"}


class UsernameError(ValueError):
    """The username policy cannot name this teacher (e.g. policy teacher_code and no 教师编号)."""


class UsernameKeyError(CreditbridgeError):
    """sync.username_key is empty while the username policy hashes ID numbers."""


def require_username_key(settings: SyncSettings) -> None:
    """Refuse to name accounts with an empty key: HMAC("", ID number) is a plain hash anyone can invert by
    trying the ID numbers of one region and birth year (seconds). Never fall back to it silently."""
    if settings.username_policy == "hashed_id" and not settings.username_key.get_secret_value().strip():
        raise UsernameKeyError(
            "sync.username_key is empty: Moodle usernames would be a plain hash of the ID number, which anyone "
            "can turn back into it. Set a random key in creditbridge.toml ([sync] username_key, `creditbridge "
            "init` writes one) or in $CREDITBRIDGE_USERNAME_KEY; docs/security.md says how for a site that "
            "already has users")


def username_for(settings: SyncSettings, row: RosterRow) -> str:
    if settings.username_policy == "teacher_code":
        code = (row.teacher_code or "").strip().lower()
        if not code:
            raise UsernameError("no teacher code (教师编号), which the username policy teacher_code needs")
        allowed = set(string.ascii_lowercase + string.digits + "._-@")
        if any(ch not in allowed for ch in code):
            raise UsernameError("teacher code has characters a Moodle username cannot hold")
        return f"{settings.username_prefix}{code}"
    require_username_key(settings)
    key = settings.username_key.get_secret_value().encode("utf-8")
    digest = hmac.new(key, row.id_number.upper().encode("ascii"), hashlib.sha256).hexdigest()
    return f"{settings.username_prefix}{digest[:16]}"


def email_for(settings: SyncSettings, row: RosterRow, username: str) -> str:
    # Lower case: Moodle refuses an address that differs from one in use only by letter case, but finds
    # addresses by exact value; what sync sends in lower case its pre-check can find again.
    return email_key(row.email) or f"{username}@{settings.email_domain}"


def email_key(email: str | None) -> str:
    """An e-mail address as Moodle compares it for duplicates (letter case aside); "" for none."""
    return (email or "").strip().lower()


def split_name(name: str) -> tuple[str, str]:
    """(firstname, lastname). Chinese names put the one-character family name first."""
    name = name.strip()
    if " " in name:
        first, _, last = name.rpartition(" ")
        return first.strip() or name, last.strip() or name
    if len(name) >= 2:
        return name[1:], name[0]
    return name, name


def _password() -> str:
    # Meets Moodle's default policy (8+ chars, digit, upper, lower, symbol); nobody is told it: the
    # site either uses SSO or the teacher resets it by e-mail.
    return "Cb#" + secrets.token_urlsafe(12) + "a9Z"


def profile_fields(settings: SyncSettings, row: RosterRow) -> list[dict[str, str]]:
    names = settings.profile_fields
    values = {
        "schoolcode": row.school_code, "school": row.school_name, "county": row.county, "city": row.city,
        "stage": settings.stage_labels.get(row.stage, row.stage), "subject": row.subject or "",
        "rural": "1" if row.rural else "0",
    }
    return [{"type": names[k], "value": v} for k, v in values.items() if names.get(k)]


def user_fields(settings: SyncSettings, row: RosterRow, username: str) -> dict[str, Any]:
    """The fields sync keeps in step (on create and on every update)."""
    first, last = split_name(row.name)
    fields: dict[str, Any] = {
        "firstname": first, "lastname": last, "email": email_for(settings, row, username),
        "institution": row.school_name[:255], "department": (row.subject or "")[:255],
        "city": row.city[:120], "country": settings.country,
        "customfields": profile_fields(settings, row),
    }
    if settings.send_id_number:
        fields["idnumber"] = row.id_number
    if row.phone:
        fields["phone1"] = row.phone
    return fields


def create_payload(settings: SyncSettings, row: RosterRow, username: str) -> dict[str, Any]:
    user: dict[str, Any] = {"username": username, "auth": settings.auth, "timezone": settings.timezone,
                            **user_fields(settings, row, username)}
    if settings.auth == "manual":
        if settings.create_password:
            user["createpassword"] = 1
        else:
            user["password"] = _password()
    # No `suspended` here: core_user_create_users does not take it (a leaver is never created anyway).
    return user


def update_payload(settings: SyncSettings, row: RosterRow, username: str, moodle_id: int, *,
                   suspended: bool) -> dict[str, Any]:
    return {"id": moodle_id, "suspended": 1 if suspended else 0, **user_fields(settings, row, username)}
