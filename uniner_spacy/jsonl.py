"""Reading JSONL: one place for what a bad line does."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Tuple, Union


def jsonl_rows(path: Union[str, Path], on_bad: Optional[Callable[[str], None]] = None) -> Iterator[Tuple[int, Any]]:
    """(line number, parsed row) for each non-blank line.

    A line that is not JSON raises ValueError naming the file and line; with
    `on_bad` the message goes there instead and the line is skipped (a raw
    corpus, where one bad line should not stop a sample).
    """
    with Path(path).open(encoding="utf8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as err:
                message = f"{path}:{n}: not JSON ({err})"
                if on_bad is None:
                    raise ValueError(message) from None
                on_bad(message + ", skipped")
