"""creditbridge: Moodle ⇄ provincial continuing-education credit registry connector."""

__version__ = "0.1.0"


class CreditbridgeError(Exception):
    """Root of every error creditbridge raises on purpose; the CLI prints these without a traceback."""
