"""All tables. Each flow keeps its own module; importing this package registers every one."""

from creditbridge.store.models import core, credits, intake, registry, scheduler, sync
from creditbridge.store.models.base import Base

__all__ = ["Base", "core", "credits", "intake", "registry", "scheduler", "sync"]
