"""What every verb's parser shares."""

from __future__ import annotations

import argparse
import json
from typing import Any


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples' line breaks and shows each option's default."""


def json_out(obj: Any) -> None:
    """Print one JSON object on stdout (progress and messages go to stderr)."""
    print(json.dumps(obj, indent=2, ensure_ascii=False))
