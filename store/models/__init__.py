"""All tables. Each flow keeps its own module; importing this package registers every one."""

from creditbridge.store.models import core  # noqa: F401
from creditbridge.store.models.base import Base

# Modules of the other flows register themselves here as they land (each with its own migration).
for _name in ("sync", "intake", "credits", "registry", "scheduler"):
    try:
        __import__(f"creditbridge.store.models.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"creditbridge.store.models.{_name}":
            raise

__all__ = ["Base"]
