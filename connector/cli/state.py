"""`sla-connector state migrate --to URL`: the state copied whole to another backend."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TextIO

from connector.config import Settings, secret
from connector.errors import InputError
from connector.state import open_state, open_state_at
from connector.state.copy import copy_state

__all__ = ["migrate_state"]


def migrate_state(settings: Settings, to: str, out: TextIO) -> int:
    """Copy the configured state into the empty state at `to` and prove the copy; 0 when it
    holds the same rows, table by table."""
    source = open_state(settings)
    try:
        if to in (settings.state_url, str(settings.state_file)):
            raise InputError(f"--to {to}: that is the configured state itself")
        # Nothing may change the source while it is copied: a running daemon refuses this.
        source.claim("state migrate")
        password = secret("state_password")
        target = open_state_at(to, password=password.get_secret_value() if password else None)
        views = [open_state(a) for a in settings.accounts() if a.tenant != source.tenant]
        try:
            target.claim("state migrate")
            # No backfill of any account may write while the copy is made.
            with ExitStack() as writers:
                for view in (source, *views):
                    writers.enter_context(view.writer(wait=False))
                checks = copy_state(source, target)
        finally:
            target.close()
            for view in views:
                view.close()
    finally:
        source.close()
    out.write(f"copied {source.where} to {target.where}\n")
    width = max(len(c.table) for c in checks)
    for check in checks:
        out.write(
            f"  {check.table:<{width}}  {check.rows:>8} rows  sha256 {check.sha256[:16]}  ok\n"
        )
    out.write(
        "Both hold the same rows. Set state_url to the new state in the configuration "
        "(keep the password in PGPASSFILE), then start the daemon.\n"
    )
    return 0
