"""Reading a TOML file a person wrote: every way it can fail, said in words.

The configuration and the simulator's workloads are both TOML files given
on the command line; a folder, a binary file or a typo in the path must be
one line naming the file and why, never a traceback.  Pure: the standard
library only.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from core.errors import Invalid


def read_toml(path: str | Path, key: str) -> dict[str, Any]:
    """The parsed file, or :class:`~core.errors.Invalid` naming ``key`` (the
    option or setting that gave the path) and what is wrong with the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise Invalid(key, f"file not found: {path}") from None
    except IsADirectoryError:
        raise Invalid(key, f"{path} is a folder, not a TOML file") from None
    except PermissionError:
        raise Invalid(key, f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        reason = f"{path} is not UTF-8 text (byte {exc.start}): TOML files are UTF-8"
        raise Invalid(key, reason) from None
    except tomllib.TOMLDecodeError as exc:
        raise Invalid(key, f"{path} is not valid TOML: {exc}") from None
