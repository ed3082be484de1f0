"""One colour per label, the same wherever entities are drawn (`annotate … out.html`, the playground,
a Label Studio labelling config).

Each label has a preferred slot from a hash of its lower-cased name, so it keeps its colour from one
run to the next whatever else is asked; a label whose slot is taken moves to the next free one, so
the labels of one request never share a colour while there are fewer of them than colours.
"""
from __future__ import annotations

import hashlib
from typing import Dict, Iterable

# Light, distinct hues that keep black text readable (Tableau 20's light row and its strong row
# lightened); displaCy draws entity text in black on them.
PALETTE = (
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d",
    "#9edae5", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1", "#d9d9d9", "#bcbddc", "#fee391",
)


def _slot(label: str) -> int:
    digest = hashlib.sha256(label.strip().lower().encode("utf8")).digest()
    return int.from_bytes(digest[:4], "big") % len(PALETTE)


def label_colors(labels: Iterable[str]) -> Dict[str, str]:
    """{label: "#rrggbb"}, distinct for up to len(PALETTE) labels, assigned in the order given."""
    out: Dict[str, str] = {}
    taken: set = set()
    for label in dict.fromkeys(labels):
        slot = _slot(label)
        if len(taken) < len(PALETTE):
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        out[label] = PALETTE[slot]
    return out
