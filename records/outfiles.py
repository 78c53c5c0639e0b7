"""Files creditbridge writes for people (reports, import files): only into the directory given, whole or not at all.

Each file is written to a fresh temporary name inside the directory (created with O_EXCL | O_NOFOLLOW, so a
symlink planted under that name is never followed) and renamed over the final name, relative to a handle on
the directory, so the file lands in that directory and nowhere else. A final name that is a symbolic link
is refused rather than replaced: someone put it there, and a report must not quietly remove it. A failure
leaves no temporary file behind and leaves an earlier file of the same name untouched.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from creditbridge import CreditbridgeError

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class OutputFileError(CreditbridgeError):
    """A file cannot be written where it was asked for; the message names the path and the reason."""


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def prepare_directory(directory: str | os.PathLike[str]) -> Path:
    """Create `directory` (and its parents) if missing; an OutputFileError naming it when that is impossible."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:  # exist_ok still raises when the name is taken by something not a directory
        raise OutputFileError(f"{d}: not a directory") from e
    except OSError as e:
        raise OutputFileError(f"{d}: cannot create the directory: {_reason(e)}") from e
    return d


def write_file(directory: str | os.PathLike[str], name: str, write: Callable[[BinaryIO], object], *,
               private: bool = False) -> Path:
    """Write `directory/name` by calling `write` with a binary file; returns the path. `private`: readable by
    its owner only (0600 whatever the umask), for files holding full ID numbers.

    `name` is one file name (no directory part). Raises OutputFileError when the directory cannot be
    used, the name is a symbolic link or a directory, or the write fails (disk full, permissions)."""
    if not name or name in (".", "..") or "/" in name or "\0" in name or (os.altsep and os.altsep in name):
        raise OutputFileError(f"{name!r}: not a plain file name")
    d = prepare_directory(directory)
    target = d / name
    try:
        dir_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise OutputFileError(f"{d}: cannot open the directory: {_reason(e)}") from e
    tmp = f".{name}.{secrets.token_hex(6)}.part"
    try:
        try:
            fd = os.open(tmp, _CREATE, 0o600 if private else 0o666, dir_fd=dir_fd)
        except OSError as e:
            raise OutputFileError(f"{target}: cannot create a file in {d}: {_reason(e)}") from e
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            _refuse_link_or_directory(target, name, dir_fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException as e:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass  # already gone; the original error is the one to report
            if isinstance(e, OSError):
                raise OutputFileError(f"{target}: cannot be written: {_reason(e)}") from e
            raise
    finally:
        os.close(dir_fd)
    return target


def _refuse_link_or_directory(target: Path, name: str, dir_fd: int) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise OutputFileError(f"{target}: is a symbolic link; refusing to write through it (remove it first)")
    if stat.S_ISDIR(st.st_mode):
        raise OutputFileError(f"{target}: is a directory")
