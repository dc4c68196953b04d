"""What every benchmark shares: the machine line and the report format
(one line per figure, then the JSON object on the last line)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Print the figures; the last line is always the JSON object."""
    if not as_json:
        width = max(len(k) for k in result) + 2
        for key, value in result.items():
            print(f"{key:{width}s} {value}")
    print(json.dumps(result))
