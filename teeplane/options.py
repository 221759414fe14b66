"""Command-line options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: The CA that TEEPlane services' TLS certificates chain to (default: the system's trust store).
CaFile = Annotated[
    Path | None,
    typer.Option(envvar="TEEPLANE_CA_FILE", help="CA bundle (PEM) to verify the services' TLS certificates."),
]
