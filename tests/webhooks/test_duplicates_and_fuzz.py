"""1,000 deliveries with 30% repeats out of order -> one record each; fuzzed bodies/headers never 5xx."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from webhook_helpers import payload, seed, settings_for, settle, signed, signed_bytes

from creditbridge.store import open_store
from creditbridge.store.models.core import CatalogCourse, LearningRecordRow
from creditbridge.store.models.intake import WebhookDelivery
from creditbridge.webhooks.app import close_app, create_app


def test_thousand_deliveries_with_repeats_make_one_record_each(db_url):
    store = open_store(db_url)
    seed(store)
    with store.session() as s:
        s.add_all([CatalogCourse(programme="sd-2022", code=f"C{i}", title="t", kind="elective",
                                 moodle_course_id=100 + i) for i in range(10)])
    app = create_app({"SETTINGS": settings_for(db_url)})
    c = app.test_client()
    unique = [payload("activity_completion_updated", courseid=100 + i % 10, course_idnumber=f"C{i % 10}",
                      cmid=1000 + i, objectid=i + 1, timecreated=1795385000 + i) for i in range(770)]
    sends = [signed(p) for p in unique]
    rng = random.Random(7)
    sends += [sends[rng.randrange(770)] for _ in range(230)]
    rng.shuffle(sends)
    statuses = [c.post("/webhooks/moodle", data=b, headers=h).status_code for b, h in sends]
    assert statuses.count(202) == 770 and statuses.count(200) == 230
    settle(app)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 770
        assert s.scalar(select(func.count()).select_from(LearningRecordRow)) == 770
        assert s.scalar(select(func.count(func.distinct(LearningRecordRow.activity)))) == 770
    close_app(app)
    store.dispose()


_header = st.one_of(st.none(), st.text(max_size=60), st.sampled_from(["v1,AAAA", "v1", "", "v2,x y", "1795385698"]))
# Any JSON value, including what JSON does not allow but Python writes (NaN, Infinity), huge integers and NULs.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
_fields = ["event", "eventname", "objectid", "site", "user", "course", "activity", "completionstate", "grade",
           "grademax", "timespent", "timecreated", "extra"]


@st.composite
def _mutated_payload(draw: st.DrawFn) -> bytes:
    """A valid payload with one field (or one field of user/course) replaced by an arbitrary JSON value."""
    p = payload("grade_updated")
    key = draw(st.sampled_from(_fields))
    value = draw(_json)
    if key in ("user", "course") and draw(st.booleans()):
        p[key][draw(st.sampled_from(sorted(p[key])))] = value
    else:
        p[key] = value
    return json.dumps(p, ensure_ascii=draw(st.booleans())).encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                      _json.map(lambda v: json.dumps(v).encode()), _mutated_payload()),
       wid=_header, ts=_header, sig=_header, sign_it=st.booleans())
def test_fuzzed_requests_never_get_5xx(sqlite_url, body, wid, ts, sig, sign_it):
    app = _APP.get(sqlite_url) or _APP.setdefault(sqlite_url, create_app({"SETTINGS": settings_for(sqlite_url)}))
    headers = {k: v for k, v in (("webhook-id", wid), ("webhook-timestamp", ts), ("webhook-signature", sig))
               if v is not None and v.isprintable() and v.isascii()}
    if sign_it:  # validly signed garbage (any bytes) must be refused by the body checks, not crash
        headers = signed_bytes(body, "msg_fuzz")
    r = app.test_client().post("/webhooks/moodle", data=body, headers=headers)
    assert r.status_code < 500, (r.status_code, r.data)
    assert r.status_code in (400, 401, 413, 415, 422) or (sign_it and r.status_code in (200, 202)), r.data


_APP: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _close_fuzzed_apps() -> Iterator[None]:
    """The fuzzed requests share one app per database; close them (flushing their refusal counts) at the end
    rather than leave their counter threads running for the rest of the session."""
    yield
    for app in _APP.values():
        close_app(app)
    _APP.clear()
