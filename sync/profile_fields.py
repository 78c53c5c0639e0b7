"""Which of the configured custom profile fields the Moodle site really stores.

`core_user_create_users` / `core_user_update_users` silently drop a `customfields` entry naming a profile field
the site does not have (roles.json), and no core web service lists a site's profile fields. So sync learns it
from an account: a field it wrote with a value and reads back is stored; one it wrote and does not read back
is not on the site (or, for a menu, the value is not one of its options). The fields known to be stored are
remembered in `sync_state`; while every configured field is among them this costs nothing.

Otherwise, before a roster run is applied, one account is read (and, for the fields it lacks, written once
and read again). A field that was missing and is now stored was added to the site since the accounts were
written: every account's stored roster hash is cleared, so the plan updates them all and they get it. A field
still missing is a note of the run, naming it and where to add it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from sqlalchemy import select, update

from creditbridge.connector.errors import MoodleError, ProtocolError
from creditbridge.store.models.core import Teacher
from creditbridge.store.models.sync import SyncState
from creditbridge.sync.apply import ApplyContext
from creditbridge.sync.moodle_users import profile_fields
from creditbridge.sync.records import RosterRow

log = logging.getLogger(__name__)

HOW_TO_ADD = ("add it on Site administration > Users > Accounts > User profile fields (category \"Teacher "
              "registry\", see docs/moodle.md), or set it to \"\" in [sync.profile_fields]; accounts are filled "
              "on the next sync after it is added")


def state_key(programme: str) -> str:
    return f"profile_fields_stored:{programme}"


class ProfileFields:
    """One roster run's view of the site's profile fields (see the module's docstring)."""

    def __init__(self, ctx: ApplyContext) -> None:
        self.ctx = ctx
        self.configured = {v for v in ctx.settings.sync.profile_fields.values() if v}
        with ctx.store.session() as s:
            raw = s.scalar(select(SyncState.value).where(SyncState.key == state_key(ctx.programme)))
        self.known: set[str] | None = set(json.loads(raw)) if raw else None
        self.missing: set[str] = set()
        self.checked = False

    @property
    def settled(self) -> bool:
        return self.known is not None and self.configured <= self.known

    def before_plan(self) -> bool:
        """Check with an account from an earlier run. True when accounts must be updated (their stored hashes
        were cleared, so the roster must be planned again)."""
        if self.settled:
            return False
        probe = self._probe_teacher()
        if probe is None:
            return False  # no account yet: `after_apply` reads one of those this run makes
        self.checked = True
        values = _sent_values(self.ctx, probe)
        try:
            present = self._stored(probe.moodle_user_id)
            absent = {f for f in values if f not in present}
            newly: set[str] = set()
            if absent:
                # Written before the field existed, or never: write just these once and see whether they stay.
                fields = [{"type": f, "value": values[f]} for f in sorted(absent)]
                result = self.ctx.client.update_users([{"id": probe.moodle_user_id, "customfields": fields}])
                if result.succeeded:
                    now = self._stored(probe.moodle_user_id)
                    newly = absent & now
                    present |= now
        except MoodleError as e:
            self._check_failed(e)
            return False
        self.missing = set(values) - present
        # A field first seen now: accounts written before cannot hold it (also when nothing was remembered yet).
        refill = bool(newly) and (self.known is None or not newly <= self.known)
        self._remember(present & self.configured)
        if refill:
            with self.ctx.store.session() as s:
                s.execute(update(Teacher).where(Teacher.programme == self.ctx.programme,
                                                Teacher.moodle_user_id.is_not(None)).values(row_hash=None))
            self.ctx.outcome.notes.append(
                f"profile field(s) {', '.join(sorted(newly))} are stored by the site now: every account is "
                "updated to fill them")
        self._note_missing()
        return refill

    def after_apply(self, touched: Iterable[str]) -> None:
        """Read back one account this run wrote (a first sync had none to check before)."""
        if self.settled or self.checked:
            return
        ids = list(touched)[:500]
        if not ids:
            return
        probe = self._probe_teacher(ids)
        if probe is None:
            return
        values = _sent_values(self.ctx, probe)
        try:
            present = self._stored(probe.moodle_user_id)
        except MoodleError as e:
            self._check_failed(e)
            return
        self.missing = set(values) - present
        self._remember(present & self.configured)
        self._note_missing()

    def _probe_teacher(self, among: list[str] | None = None) -> Teacher | None:
        # An active teacher with a subject: every configured field then has a value to find again.
        stmt = (select(Teacher).where(Teacher.programme == self.ctx.programme, Teacher.moodle_user_id.is_not(None),
                                      Teacher.status == "active")
                .order_by(Teacher.subject.is_(None), Teacher.id_number).limit(1))
        if among is not None:
            stmt = stmt.where(Teacher.id_number.in_(among))
        with self.ctx.store.session() as s:
            teacher = s.scalars(stmt).first()
            if teacher is not None:
                s.expunge(teacher)
            return teacher

    def _stored(self, moodle_user_id: int | None) -> set[str]:
        users = self.ctx.client.get_users_by_field("id", [moodle_user_id])
        try:
            return {str(f["shortname"]) for u in users for f in u.get("customfields") or []}
        except (KeyError, TypeError, AttributeError) as e:
            raise ProtocolError(f"unexpected answer ({type(e).__name__}: {e}): users with customfields "
                                "(shortname, value) were expected", function="core_user_get_users_by_field") from e

    def _remember(self, stored: set[str]) -> None:
        self.known = (self.known or set()) | stored
        value = json.dumps(sorted(self.known))
        with self.ctx.store.session() as s:
            state = s.get(SyncState, state_key(self.ctx.programme))
            if state is None:
                s.add(SyncState(key=state_key(self.ctx.programme), value=value))
            else:
                state.value = value

    def _check_failed(self, error: MoodleError) -> None:
        note = f"profile fields could not be checked ({error}); checked again next run"
        log.warning("%s", note)
        self.ctx.outcome.notes.append(note)

    def _note_missing(self) -> None:
        if self.missing:
            names = ", ".join(sorted(self.missing))
            note = (f"profile field(s) {names} not stored by the site (no such user profile field, or for a menu a "
                    f"value that is not one of its options): {HOW_TO_ADD}")
            log.warning("%s", note)
            self.ctx.outcome.notes.append(note)


def _sent_values(ctx: ApplyContext, t: Teacher) -> dict[str, str]:
    """The profile field values sync sends for this teacher (shortname -> value), non-empty ones only."""
    row = RosterRow(0, t.id_number, t.name, t.school_code, t.school_name, t.county, t.city, t.stage, t.subject,
                    bool(t.rural), "active")
    return {f["type"]: f["value"] for f in profile_fields(ctx.settings.sync, row) if f["value"] not in ("", None)}
