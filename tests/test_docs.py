"""The user-facing docs stay short and current: history belongs in CHANGELOG.md and benchmarks/NOTES.md."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# dated or per-session prose: a reader of the current release cannot tell what still holds
DIARY = re.compile(r"\b20\d\d-\d\d-\d\d\b|this session|slower day|an hour (?:earlier|later)|"
                   r"in the morning|afternoon|after noon|the same day|this stop", re.IGNORECASE)


def test_readme_is_short_and_names_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150, "README.md grew past 150 lines: move detail to docs/"
    assert "make demo" in text and "make test" in text, "the README must name the set-up commands CI runs"


def test_user_docs_carry_no_dated_or_per_session_prose():
    found = [f"{path.relative_to(ROOT)}:{n}: {match.group(0)!r}"
             for path in USER_DOCS
             for n, line in enumerate(path.read_text().splitlines(), 1)
             for match in DIARY.finditer(line)]
    assert not found, "dated prose in user docs (move it to CHANGELOG.md or benchmarks/NOTES.md):\n" + "\n".join(found)
