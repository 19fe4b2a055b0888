"""Reading a file whose size we do not control, without trusting it: at most a stated number of bytes."""

from __future__ import annotations

import os


class FileTooLarge(ValueError):
    """A file over the bound its reader set: nothing past the bound was read."""


def read_bounded(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The file's bytes, refused (FileTooLarge) if there are more than `max_bytes`. It reads at most one byte
    past the bound rather than trusting the size the file system reports, so a file that grows, a pipe or a
    device cannot make it allocate more."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLarge(f"{os.fspath(path)} is larger than {max_bytes:,} bytes")
    return data
