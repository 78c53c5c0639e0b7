"""`creditbridge credits`, composed above both flows it shows: the mappings flow's commands (evaluate, explain,
cycle) and `credits status`, which reports what waits for evaluation and for push (outbox/status.py). Neither
flow's module may import the other's (the import contracts), so the group is put together here, without
changing either module's group."""

from __future__ import annotations

import click

from creditbridge.mappings.commands import credits_group
from creditbridge.outbox.commands import status_command

credits = click.Group(credits_group.name, commands=[*credits_group.commands.values(), status_command],
                      help="Evaluate credits from learning records, explain them, and show what waits.")

COMMANDS = [credits]
