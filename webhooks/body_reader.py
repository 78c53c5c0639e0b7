"""Reading a delivery's body within a deadline, so one slow sender cannot hold a connection for ever.

gunicorn's gevent worker bounds how long a request line and headers may take (it reads each request inside a
`gevent.Timeout` of `--keep-alive` seconds) but not the body: the application reads that, and gunicorn's
`--timeout` is only the worker's heartbeat, which a gevent worker keeps beating while one greenlet waits. A
sender trickling one byte every 2 seconds would otherwise keep its connection and greenlet as long as it likes.
Here the whole body read runs under one `gevent.Timeout` (a timer on the worker's event loop, no thread).

Under gthread or sync workers the socket is not gevent's, so a gevent timer cannot interrupt the read; there
the body is read without a deadline (sync workers are still killed by gunicorn's --timeout), and the supported
deployment puts nginx in front, which buffers the whole body before gunicorn sees any of it (docs/webhooks.md).
"""

from __future__ import annotations

from typing import Any

from gevent import Timeout
from gevent.monkey import is_module_patched
from werkzeug.wsgi import get_input_stream


class BodyReadTimeout(Exception):
    """The body did not arrive within the deadline.

    An Exception (not gevent.Timeout's BaseException) on purpose: gunicorn marks a request body whose read
    raised an Exception as failed and closes the connection after the answer instead of draining the rest of
    the slow body under the keep-alive timeout."""


def read_body(environ: dict[str, Any], limit: int, timeout: float) -> bytes:
    """At most `limit` + 1 bytes of the request body (one more than allowed, so the caller can tell a body
    over the limit); raises BodyReadTimeout when they have not all arrived within `timeout` seconds."""
    # Without a length and not chunked, werkzeug gives an empty stream rather than one that never ends.
    stream = get_input_stream(environ)
    if not is_module_patched("socket"):
        return stream.read(limit + 1)
    # The class, not an instance: nothing is built per request unless the deadline passes.
    with Timeout(timeout, BodyReadTimeout):
        return stream.read(limit + 1)
