"""gunicorn's gevent worker, stopping without a traceback on SIGINT or SIGQUIT (Ctrl-C on `creditbridge serve`,
gunicorn's quick stop).

gunicorn's GeventWorker.handle_quit spawns a greenlet that calls sys.exit(0); gevent hands that SystemExit to
the main greenlet, which prints it with a traceback as "... failed with SystemExit" (benoitc/gunicorn#3239,
closed upstream as not a gunicorn bug). Here a quit ends the worker's loop the way SIGTERM does: it stops
accepting, lets the requests in flight finish (bounded by gunicorn's graceful timeout, after which the arbiter
kills the worker anyway) and exits through gunicorn's ordinary path, so a background queue is drained too.
"""

from __future__ import annotations

from types import FrameType

from gunicorn.workers.ggevent import GeventWorker


class QuietGeventWorker(GeventWorker):
    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        self.alive = False  # the run loop sees it within a second and stops the server
        self.cfg.worker_int(self)  # gunicorn's worker_int hook, as its own handle_quit calls it
