"""`creditbridge sandbox`: run the Moodle-compatible sandbox LMS, and record completions in a running one."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click

from creditbridge import CreditbridgeError
from creditbridge.cli.context import emit_json

ADMIN_CALL_TIMEOUT = 10


def _hint(token: str) -> str:
    """Enough of the token to recognise it; never the whole secret in output or logs."""
    return token[:4] + "…" + token[-2:] if len(token) > 8 else "…"


@click.group("sandbox", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0 picks a free one).")
@click.option("--token", envvar="CREDITBRIDGE_MOODLE_TOKEN", help="The admin's web-service token "
              "(default: $CREDITBRIDGE_MOODLE_TOKEN, else a new random one).")
@click.option("--db", "db", default=":memory:", show_default=True, help="SQLite file for the site's data.")
@click.option("--debug", is_flag=True, help="Answer like a site with debugging on (adds debuginfo to errors).")
@click.option("--webhook-url", envvar="CREDITBRIDGE_SANDBOX_WEBHOOK_URL",
              help="Send completions as signed webhooks here (as the local_creditbridge plugin does).")
@click.option("--webhook-secret", envvar="CREDITBRIDGE_WEBHOOK_SECRET", help="Secret for signing webhooks.")
@click.option("--wwwroot", help="The site URL the sandbox reports (default: the URL it listens on).")
@click.option("--role", type=click.Choice(["admin", "docs"]), default="admin", show_default=True,
              help="Whose token --token is: the site administrator's (may do everything), or a user "
                   "`creditbridge` holding exactly the role docs/moodle.md describes (as strict as a real site).")
@click.option("--cost", type=click.Choice(["none", "real"]), default="none", show_default=True,
              help="real: every web-service call takes the time a real Moodle 4.5 took (for measuring; the "
                   "figures and where they come from: creditbridge/sandbox/cost.py).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Serve at most this many web-service requests at once, like a site's PHP processes (more "
                   "wait in a queue). Default: no limit.")
@click.pass_context
def sandbox(ctx: click.Context, host: str, port: int, token: str | None, db: str, debug: bool,
            webhook_url: str | None, webhook_secret: str | None, wwwroot: str | None, role: str, cost: str,
            workers: int | None) -> None:
    """Run a Moodle-compatible sandbox LMS at /webservice/rest/server.php (Ctrl-C stops it)."""
    if ctx.invoked_subcommand is not None:
        return
    # Only the server needs Flask and the sandbox site: at the top, they would add about a quarter to the start-up
    # of the admin subcommands below, plain HTTP clients (measured, issue #17).
    from creditbridge.sandbox.app import create_app  # noqa: PLC0415
    from creditbridge.sandbox.server import serve_in_thread  # noqa: PLC0415

    if webhook_url and not webhook_secret:
        raise CreditbridgeError("--webhook-url needs --webhook-secret (or CREDITBRIDGE_WEBHOOK_SECRET)")
    generated = token is None
    token = token or secrets.token_hex(16)
    site = (wwwroot or (f"http://{host}:{port}" if port else "")).rstrip("/") or None
    config: dict[str, Any] = {"SANDBOX_TOKEN": token, "SANDBOX_DB": db, "SANDBOX_DEBUG": debug,
                              "SANDBOX_WWWROOT": site, "SANDBOX_ROLE": role, "SANDBOX_COST": cost,
                              "SANDBOX_WORKERS": workers}
    if webhook_url:
        config.update(SANDBOX_WEBHOOK_URL=webhook_url, SANDBOX_WEBHOOK_SECRET=webhook_secret)
    handle = None
    try:
        app = create_app(config)
        handle = serve_in_thread(app, host, port, log_requests=True)  # also settles the site URL for port 0
        click.echo(f"sandbox LMS listening on {handle.url}")
        click.echo(f"  web services: {handle.url}/webservice/rest/server.php")
        if cost == "real" or workers:
            charged = "each call takes what a real Moodle 4.5 took" if cost == "real" else "none"
            click.echo(f"  cost: {charged}; requests served at once: {workers or 'no limit'}")
        if role == "docs":
            click.echo("  the token belongs to user `creditbridge` with the role docs/moodle.md describes; "
                       "the admin endpoints (/sandbox/admin/...) take the same token")
        if generated:
            # A generated token is shown once so the newcomer can use it; a given one only as a hint.
            click.echo(f"  admin token:  {token}")
        else:
            click.echo(f"  admin token:  {_hint(token)} (from --token / CREDITBRIDGE_MOODLE_TOKEN)")
        click.echo(f"  try: CREDITBRIDGE_MOODLE_URL={handle.url} CREDITBRIDGE_MOODLE_TOKEN=<token> "
                   "creditbridge moodle check")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except OSError as e:
        raise CreditbridgeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    finally:
        if handle is not None:
            handle.stop()


def _admin_post(url: str, token: str, endpoint: str, fields: dict[str, Any]) -> dict[str, Any]:
    data = urllib.parse.urlencode({"wstoken": token, **{k: v for k, v in fields.items() if v is not None}}).encode()
    target = url.rstrip("/") + f"/sandbox/admin/{endpoint}"
    if urllib.parse.urlsplit(target).scheme not in {"http", "https"}:
        raise CreditbridgeError(f"the sandbox URL must be http(s): {url}")
    try:
        with urllib.request.urlopen(urllib.request.Request(target, data=data, method="POST"),  # noqa: S310 - checked
                                    timeout=ADMIN_CALL_TIMEOUT) as r:
            return json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        try:
            reason = json.loads(e.read().decode()).get("error", e.reason)
        except ValueError:
            reason = e.reason
        raise CreditbridgeError(f"sandbox refused {endpoint}: {reason} (HTTP {e.code})") from e
    except (urllib.error.URLError, TimeoutError) as e:
        raise CreditbridgeError(f"cannot reach the sandbox at {url}: {getattr(e, 'reason', e)}") from e


_url = click.option("--url", envvar="CREDITBRIDGE_MOODLE_URL", required=True, help="The running sandbox's URL.")
_token = click.option("--token", envvar="CREDITBRIDGE_MOODLE_TOKEN", required=True, help="Its admin token.")
_json = click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")


@sandbox.command("complete")
@_url
@_token
@click.option("--userid", type=int, required=True, help="Moodle user id of the learner.")
@click.option("--courseid", type=int, help="Mark this course complete.")
@click.option("--cmid", type=int, help="Mark this activity (course module) complete instead.")
@click.option("--state", "completionstate", type=click.IntRange(0, 3), default=1, show_default=True,
              help="Activity completion state (0 incomplete, 1 complete, 2 pass, 3 fail).")
@click.option("--timecompleted", type=int, help="Unix time of a course completion (default: now).")
@_json
def complete(url: str, token: str, userid: int, courseid: int | None, cmid: int | None, completionstate: int,
             timecompleted: int | None, as_json: bool) -> None:
    """Record a completion in a running sandbox (fires the completion webhook when one is configured)."""
    if (courseid is None) == (cmid is None):
        raise click.UsageError("give exactly one of --courseid or --cmid")
    if courseid is not None:
        answer = _admin_post(url, token, "course_completion", {"userid": userid, "courseid": courseid,
                                                               "timecompleted": timecompleted})
        text = f"course {courseid} completed by user {userid} at {answer['timecompleted']}"
    else:
        answer = _admin_post(url, token, "activity_completion", {"userid": userid, "cmid": cmid,
                                                                 "completionstate": completionstate})
        text = f"activity {cmid}: user {userid} completion state {answer['completionstate']}"
    if as_json:
        emit_json(answer)
    else:
        click.echo(text)


@sandbox.command("enrol-me")
@_url
@_token
@click.option("--userid", type=int, required=True, help="Moodle user id of the teacher.")
@click.option("--courseid", type=int, help="The course whose \"Enrol me\" button they click.")
@click.option("--all-open", is_flag=True, help="Every course open to them (every elective they may take).")
@_json
def enrol_me(url: str, token: str, userid: int, courseid: int | None, all_open: bool, as_json: bool) -> None:
    """Self-enrol a teacher in a course as they would on its enrolment page (enrol_self, cohort-restricted)."""
    if (courseid is None) == (not all_open):
        raise click.UsageError("give exactly one of --courseid or --all-open")
    answer = _admin_post(url, token, "self_enrol", {"userid": userid, "courseid": courseid or 0})
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"user {userid} enrolled in course(s) {', '.join(map(str, answer['courseids'])) or '(none open)'}")


@sandbox.command("add-activity")
@_url
@_token
@click.option("--courseid", type=int, required=True)
@click.option("--modname", default="page", show_default=True, help="Module type (page, quiz, assign...).")
@click.option("--name", required=True, help="Activity name.")
@click.option("--idnumber", default="", help="Activity code (course module idnumber).")
@_json
def add_activity(url: str, token: str, courseid: int, modname: str, name: str, idnumber: str, as_json: bool) -> None:
    """Add an activity with manual completion to a course (Moodle has no web service for this)."""
    answer = _admin_post(url, token, "course_module", {"courseid": courseid, "modname": modname, "name": name,
                                                       "idnumber": idnumber})
    emit_json(answer) if as_json else click.echo(f"cmid {answer['cmid']}")


@sandbox.command("run-cron")
@_url
@_token
@_json
def run_cron(url: str, token: str, as_json: bool) -> None:
    """Run the completion task: courses whose criteria are met become complete."""
    answer = _admin_post(url, token, "run_cron", {})
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"{len(answer['completed'])} course completion(s) recorded")


_onoff = click.Choice(["on", "off"])


@sandbox.command("site")
@_url
@_token
@click.option("--welcome", type=_onoff, help="Course welcome messages of manual enrolment: the default for new "
              "courses and every existing course's setting.")
@click.option("--allow", "allow", multiple=True, metavar="CAPABILITY", help="Give the creditbridge role a capability.")
@click.option("--deny", "deny", multiple=True, metavar="CAPABILITY", help="Take a capability from the role.")
@click.option("--mail-fails", type=_onoff, help="Make outgoing mail fail (welcome messages are not sent).")
@click.option("--receiver", metavar="URL", help="The plugin's endpoint setting.")
@click.option("--enrol-plugin", "enrol_plugins", multiple=True, metavar="NAME=on|off",
              help="Enable or disable an enrolment plugin (manual, self, cohort, guest).")
@click.option("--receiver-blocked", type=_onoff, help="Curl security blocks the plugin's endpoint.")
@_json
def site(url: str, token: str, welcome: str | None, allow: tuple[str, ...], deny: tuple[str, ...],
         mail_fails: str | None, receiver: str | None, enrol_plugins: tuple[str, ...], receiver_blocked: str | None,
         as_json: bool) -> None:
    """Change what a site administrator changes on Moodle's admin pages (the sandbox's admin switches)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    if welcome:
        calls.append(("welcome", {"sendoption": 1 if welcome == "on" else 0, "scope": "all"}))
    calls += [("capability", {"capability": cap, "allow": 1}) for cap in allow]
    calls += [("capability", {"capability": cap, "allow": 0}) for cap in deny]
    if mail_fails:
        calls.append(("switch", {"name": "mail_fails", "on": int(mail_fails == "on")}))
    if receiver:
        calls.append(("receiver", {"url": receiver}))
    for spec in enrol_plugins:
        name, _, state = spec.partition("=")
        if state not in ("on", "off"):
            raise click.BadParameter(f"{spec!r}: give NAME=on or NAME=off", param_hint="--enrol-plugin")
        calls.append(("enrol_plugin", {"name": name, "enabled": int(state == "on")}))
    if receiver_blocked:
        calls.append(("switch", {"name": "receiver_blocked", "on": int(receiver_blocked == "on")}))
    if not calls:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    answers = [{"endpoint": endpoint, **_admin_post(url, token, endpoint, fields)} for endpoint, fields in calls]
    if as_json:
        emit_json(answers)
    else:
        for answer in answers:
            click.echo(" ".join(f"{k}={v}" for k, v in answer.items()))


COMMANDS = [sandbox]

