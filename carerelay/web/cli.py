"""``carerelay embed url``: a launch link for embedded mode, as the EHR would build it.

For the EHR team to check their own token code against, and for trying embedded mode by hand.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console

from carerelay.config import get_settings
from carerelay.core.clock import SystemClock
from carerelay.web.launch import build_token

embed_app = typer.Typer(no_args_is_help=True, help="Embedded mode (EHR side panel) launch links.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@embed_app.command("url")
def launch_url(
    user: Annotated[str, typer.Option(help="The EHR user name (a person's ehr_username, e.g. GHOUSE)")],
    mrn: Annotated[str, typer.Option(help="The patient's MRN")],
    seconds: Annotated[int, typer.Option(help="How long the link works")] = 120,
) -> None:
    """Print a signed, single-use launch URL for /embed (needs CARERELAY_EMBED_LAUNCH_KEY)."""
    settings = get_settings()
    if not settings.embed_launch_key:
        err.print("carerelay: set CARERELAY_EMBED_LAUNCH_KEY first (e.g. openssl rand -hex 32)")
        raise typer.Exit(2)
    if not 1 <= seconds <= settings.embed_token_max_seconds:
        err.print(f"carerelay: --seconds must be 1..{settings.embed_token_max_seconds} "
                  "(CARERELAY_EMBED_TOKEN_MAX_SECONDS)")
        raise typer.Exit(2)
    token = build_token(key=settings.embed_launch_key, ehr_username=user, mrn=mrn,
                        expires_at=SystemClock().now() + timedelta(seconds=seconds))
    out.print(f"{settings.public_url.rstrip('/')}/embed?token={token}")
