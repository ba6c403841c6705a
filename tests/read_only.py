"""A read-only folder for the tests, also where they run as root."""

from __future__ import annotations

import os


def make_read_only(folder, monkeypatch):
    """Makes `folder` read-only; returns how to undo it.

    Root writes anywhere, so where the tests run as root the folder also reads
    as read-only to os.access, as a read-only file system does (where root is
    refused too); the tests then check that nothing was written at all.
    """
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda path, mode: (
                real_access(path, mode)
                and not (
                    mode & os.W_OK
                    and os.path.exists(path)
                    and os.path.samefile(path, folder)
                )
            ),
        )
    return lambda: folder.chmod(0o755)
