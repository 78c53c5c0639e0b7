"""What a teacher looks like to Moodle: usernames, e-mail, profile fields, and the ID number kept out."""

from __future__ import annotations

import pytest

from creditbridge.settings.model import SyncSettings
from creditbridge.sync.moodle_users import (
    UsernameError,
    create_payload,
    split_name,
    update_payload,
    username_for,
)
from creditbridge.sync.records import RosterRow

ID = "37010219890514004X"


def _row(**kw: object) -> RosterRow:
    base = dict(row=2, id_number=ID, name="王小明", school_code="370102001", school_name="济南市历下区第一中学",
                county="历下区", city="济南市", stage="middle", subject="maths", rural=True, status="active")
    base.update(kw)
    return RosterRow(**base)  # type: ignore[arg-type]


def test_hashed_username_is_stable_keyed_and_does_not_contain_the_id_number() -> None:
    s = SyncSettings(username_key="k1")
    a, b = username_for(s, _row()), username_for(s, _row(name="别的名字", school_code="x"))
    assert a == b and a.startswith("t") and len(a) == 17 and a == a.lower()
    assert ID[:6] not in a
    assert username_for(SyncSettings(username_key="k2"), _row()) != a
    assert username_for(s, _row(id_number=ID.lower())) == a


def test_teacher_code_policy_needs_a_usable_code() -> None:
    s = SyncSettings(username_policy="teacher_code", username_prefix="sd")
    assert username_for(s, _row(teacher_code="T-0042")) == "sdt-0042"
    with pytest.raises(UsernameError, match="教师编号"):
        username_for(s, _row(teacher_code=None))
    with pytest.raises(UsernameError):
        username_for(s, _row(teacher_code="教师 1"))


def test_create_payload_fields_and_no_id_number_unless_configured() -> None:
    s = SyncSettings()
    user = create_payload(s, _row(), "tabc")
    assert user["email"] == "tabc@teachers.invalid" and user["auth"] == "manual"
    assert (user["firstname"], user["lastname"]) == ("小明", "王")
    fields = {f["type"]: f["value"] for f in user["customfields"]}
    assert fields == {"schoolcode": "370102001", "school": "济南市历下区第一中学", "county": "历下区",
                      "city": "济南市", "stage": "Secondary", "subject": "maths", "rural": "1"}
    assert ID not in repr(user)
    assert "password" in user and "createpassword" not in user
    sent = create_payload(SyncSettings(send_id_number=True, create_password=True), _row(email="a@b.cn"), "tabc")
    assert sent["idnumber"] == ID and sent["createpassword"] == 1 and sent["email"] == "a@b.cn"


def test_update_payload_suspends_and_reactivates() -> None:
    s = SyncSettings()
    assert update_payload(s, _row(status="left"), "tabc", 7, suspended=True)["suspended"] == 1
    back = update_payload(s, _row(), "tabc", 7, suspended=False)
    assert back["suspended"] == 0 and back["id"] == 7 and "username" not in back and "password" not in back


def test_profile_field_shortnames_come_from_settings() -> None:
    s = SyncSettings(profile_fields={"schoolcode": "sc", "rural": "", "stage": "stage"},
                     stage_labels={"middle": "初中"})
    fields = {f["type"]: f["value"] for f in create_payload(s, _row(), "u")["customfields"]}
    assert fields == {"sc": "370102001", "stage": "初中"}


def test_split_name() -> None:
    assert split_name("张三") == ("三", "张")
    assert split_name("Ada Lovelace") == ("Ada", "Lovelace")
    assert split_name("王") == ("王", "王")
