"""Baseline for bench/webhooks_load.py: a bare Flask endpoint answering 200, served by the same gunicorn."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.post("/webhooks/moodle")
def receive() -> tuple[str, int]:
    return "{}", 200


@app.get("/healthz")
def healthz() -> tuple[str, int]:
    return "{}", 200
