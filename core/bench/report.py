"""The bench's files: the result JSON (written once every run is done) and, on request, each run's trace."""

from __future__ import annotations

import json
from pathlib import Path

from core.trace import dumps


def write_result(path: str, result: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)


def save_trace(folder: str, name: str, events: list) -> None:
    """``events`` as FOLDER/NAME.json, the format a page replays."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"{name}.json").write_text(dumps(events))

