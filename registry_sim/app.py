"""The simulated provincial credit registry (Flask app factory). The API is in docs/registry-api.md.

Config keys (`test_config` or `app.config`):
  REGISTRY_SIM_DB            SQLite path or ":memory:" (default ":memory:")
  REGISTRY_SIM_KEYS          {key_id: secret} accepted for signing
  REGISTRY_SIM_TOLERANCE     seconds a signed timestamp may be off (default 300)
  REGISTRY_SIM_MAX_INFLIGHT  concurrent batch requests before answering 429 (default 8)
  REGISTRY_SIM_RETRY_AFTER   seconds sent in Retry-After with 429/503 (default 1)
  REGISTRY_SIM_FAIL_RATE     share of batch calls that fail on purpose (default 0)
  REGISTRY_SIM_FAIL_MODES    which failures: "503" (refused before recording), "timeout" (recorded,
                             then the answer comes too late), "drop" (recorded, connection dropped)
  REGISTRY_SIM_HANG_SECONDS  how long a "timeout" failure sleeps (default 2)
  REGISTRY_SIM_SEED          seed of the failure dice (default: random)
  REGISTRY_SIM_LATENCY       seconds every batch call takes at least (default 0), to model a slow registry
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import socket
import sqlite3
import threading
import time
import uuid
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import ValidationError

from creditbridge.connector.registry.signing import (
    IDEMPOTENCY_HEADER,
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from creditbridge.records import mask_id_number
from creditbridge.registry_sim.db import SimDB, _now
from creditbridge.registry_sim.schema import KNOWN_PROGRAMMES, Batch, BatchItem, CreditRecord

log = logging.getLogger(__name__)
api = Blueprint("registry_api", __name__, url_prefix="/api/v1")

DEFAULTS: dict[str, Any] = {
    "REGISTRY_SIM_DB": ":memory:",
    "REGISTRY_SIM_KEYS": {"creditbridge": "registry-sim-secret"},
    "REGISTRY_SIM_TOLERANCE": 300,
    "REGISTRY_SIM_MAX_INFLIGHT": 8,
    "REGISTRY_SIM_RETRY_AFTER": 1,
    "REGISTRY_SIM_FAIL_RATE": 0.0,
    "REGISTRY_SIM_FAIL_MODES": ("503", "timeout", "drop"),
    "REGISTRY_SIM_HANG_SECONDS": 2.0,
    "REGISTRY_SIM_SEED": None,
    "REGISTRY_SIM_LATENCY": 0.0,
    "REGISTRY_SIM_PROGRAMMES": KNOWN_PROGRAMMES,
}


class SimState:
    def __init__(self, config: dict[str, Any]) -> None:
        self.db = SimDB(config["REGISTRY_SIM_DB"])
        self.inflight = threading.BoundedSemaphore(int(config["REGISTRY_SIM_MAX_INFLIGHT"]))
        self.dice = random.Random(config["REGISTRY_SIM_SEED"])
        self.calls = 0
        self.failures: dict[str, int] = {}
        self.replays = 0  # batches answered from the stored answer of their Idempotency-Key
        self.refused = 0  # calls refused at the signature check


def _state() -> SimState:
    return current_app.extensions["registry_sim"]


def _error(status: int, code: str, message: str, retry_after: float | None = None) -> Response:
    resp = jsonify({"error": {"code": code, "message": message}, "request_id": request.environ["sim.request_id"]})
    resp.status_code = status
    if retry_after is not None:
        resp.headers["Retry-After"] = str(int(retry_after))
    return resp


def _check_signature(body: bytes) -> Response | None:
    cfg = current_app.config
    key_id = request.headers.get(KEY_ID_HEADER, "")
    secret = cfg["REGISTRY_SIM_KEYS"].get(key_id)
    if secret is None:
        return _error(401, "unknown_key", "unknown key id")
    ts = request.headers.get(TIMESTAMP_HEADER, "")
    try:
        skew = abs(time.time() - int(ts))
    except ValueError:
        return _error(401, "bad_timestamp", "timestamp must be Unix seconds")
    if skew > cfg["REGISTRY_SIM_TOLERANCE"]:
        return _error(401, "stale_timestamp", "timestamp outside the tolerance window")
    if not verify(secret, request.method, request.path, ts, body, request.headers.get(SIGNATURE_HEADER, "")):
        return _error(401, "bad_signature", "signature does not match")
    return None


def _reject_reason(item: BatchItem, programmes: tuple[str, ...]) -> tuple[CreditRecord | None, str | None]:
    try:
        rec = CreditRecord.model_validate(item.record)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "record"
        # pydantic echoes the input in messages; ours never carries a full ID number back.
        return None, f"{field}: {first['msg'].removeprefix('Value error, ')}"
    if rec.programme_code not in programmes:
        return None, f"programme_code: unknown programme {rec.programme_code!r}"
    return rec, None


def _record_one(db: SimDB, item: BatchItem, programmes: tuple[str, ...]) -> dict[str, Any]:
    existing = db.find_record(item.key)
    if existing is not None:
        # The same logical write again (a retry after a lost answer): answer as before, record nothing.
        db.conn.execute("UPDATE credit_record SET deliveries = deliveries + 1 WHERE id = ?", (existing["id"],))
        return {"key": item.key, "status": "acknowledged", "registry_id": f"CR{existing['id']:010d}", "replayed": True}
    rec, reason = _reject_reason(item, programmes)
    if rec is None:
        return {"key": item.key, "status": "rejected", "reason": reason}
    earlier = db.find_record(item.supersedes) if item.supersedes else None
    if item.action == "void" and earlier is None:
        return {"key": item.key, "status": "rejected", "reason": "supersedes: no such record to void"}
    try:
        cur = db.conn.execute(
            "INSERT INTO credit_record (record_key, programme, teacher, role, year, version, action, state,"
            " supersedes, payload, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (item.key, rec.programme_code, rec.id_number, rec.role, rec.year, rec.version, item.action,
             "void" if item.action == "void" else "active", item.supersedes,
             rec.model_dump_json(), _now()))
    except sqlite3.IntegrityError:
        return {"key": item.key, "status": "rejected",
                "reason": f"version {rec.version} already recorded for this teacher under another key"}
    if earlier is not None:
        db.conn.execute("UPDATE credit_record SET state = ? WHERE id = ?",
                        ("voided" if item.action == "void" else "superseded", earlier["id"]))
    return {"key": item.key, "status": "acknowledged", "registry_id": f"CR{cur.lastrowid:010d}"}


def _drop_connection() -> None:
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@api.post("/credit-records:batch")
def submit_batch() -> Response:
    state = _state()
    cfg = current_app.config
    body = request.get_data(cache=True)
    denied = _check_signature(body)
    if denied is not None:
        state.refused += 1
        return denied
    key = request.headers.get(IDEMPOTENCY_HEADER, "")
    if not 8 <= len(key) <= 200:
        return _error(400, "missing_idempotency_key", f"{IDEMPOTENCY_HEADER} header of 8-200 characters required")
    if not state.inflight.acquire(blocking=False):
        return _error(429, "too_many_requests", "too many batches in flight", cfg["REGISTRY_SIM_RETRY_AFTER"])
    try:
        state.calls += 1
        failure = None
        if state.dice.random() < cfg["REGISTRY_SIM_FAIL_RATE"]:
            failure = state.dice.choice(list(cfg["REGISTRY_SIM_FAIL_MODES"]))
            state.failures[failure] = state.failures.get(failure, 0) + 1
        if failure == "503":
            return _error(503, "unavailable", "registry busy, try later", cfg["REGISTRY_SIM_RETRY_AFTER"])
        if cfg["REGISTRY_SIM_LATENCY"]:
            time.sleep(float(cfg["REGISTRY_SIM_LATENCY"]))
        resp = _process(state, key, body)
        if failure == "timeout":
            time.sleep(float(cfg["REGISTRY_SIM_HANG_SECONDS"]))
        elif failure == "drop":
            _drop_connection()
        return resp
    finally:
        state.inflight.release()


def _process(state: SimState, key: str, body: bytes) -> Response:
    digest = hashlib.sha256(body).hexdigest()
    db = state.db
    with state.db.lock:
        stored = db.stored_batch(key)
        if stored is not None:
            if stored["body_sha256"] != digest:
                return _error(422, "idempotency_key_reused", "this Idempotency-Key was used with another body")
            resp = Response(stored["response"], status=200, mimetype="application/json")
            resp.headers["Idempotent-Replayed"] = "true"
            state.replays += 1
            return resp
        try:
            batch = Batch.model_validate_json(body)
        except ValidationError as e:
            first = e.errors()[0]
            return _error(400, "bad_body", f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        programmes = tuple(current_app.config["REGISTRY_SIM_PROGRAMMES"])
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            results = [_record_one(db, item, programmes) for item in batch.records]
            payload = json.dumps({"batch": key, "request_id": request.environ["sim.request_id"], "results": results},
                                 ensure_ascii=False)
            db.conn.execute("INSERT INTO batch (idempotency_key, body_sha256, response, created_at) VALUES (?,?,?,?)",
                            (key, digest, payload, _now()))
            db.conn.execute("COMMIT")
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
    rejected = sum(1 for r in results if r["status"] == "rejected")
    log.info("batch %s: %d records, %d rejected", key[:12], len(results), rejected)
    return Response(payload, status=200, mimetype="application/json")


@api.get("/credit-records")
def list_records() -> Response:
    state = _state()
    args = request.args
    teacher = args.get("teacher")
    with state.db.lock:
        rows = state.db.records(programme=args.get("programme"), teacher=teacher, role=args.get("role"),
                                year=args.get("year", type=int), state=args.get("state"),
                                record_key=args.get("key"), limit=args.get("limit", 1000, type=int),
                                offset=args.get("offset", 0, type=int))
        counts = state.db.counts()
    if args.get("masked", "1") != "0":
        for r in rows:
            r["teacher"] = mask_id_number(r["teacher"])
            r["payload"]["id_number"] = mask_id_number(r["payload"].get("id_number"))
    return jsonify({"records": rows, "counts": counts})


@api.get("/health")
def health() -> Response:
    s = _state()
    return jsonify({"ok": True, "calls": s.calls, "failures": s.failures, "replays": s.replays})


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    if test_config:
        app.config.from_mapping(test_config)
    app.extensions["registry_sim"] = SimState(app.config)

    @app.before_request
    def _request_id() -> None:
        request.environ["sim.request_id"] = uuid.uuid4().hex[:16]

    app.register_blueprint(api)
    return app
