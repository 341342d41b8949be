"""Every reference to a section of the guides (docs/) leads somewhere: a
reader sent to a section that does not exist has to guess which one was meant.

Two forms are written, in code and in the docs alike:
- a citation, `(docs/design.md, "Client exposure")`: a heading of that file
  by its text, or by the part before its first colon or comma ("The admin"
  for "The admin, for support staff"), or by the words after the colon of an
  endpoint's heading ("a statement" for "`GET .../statement`: a statement"),
  or a term the guide defines in bold in a list (`**Names**`);
- a link, `docs/api.md#rate-limits` or `[Rate limits](#rate-limits)` inside
  the guides: a heading's anchor as GitHub makes it.
"""

import re
import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TEXT_SUFFIXES = {".py", ".md", ".html", ".txt", ".yml", ".yaml", ".toml", ".cfg", ".ini", ".sh", ".conf", ".j2"}

# docs/x.md, "Title" (the title may run over lines).
CITATION = re.compile(r"(docs/[\w.-]+\.md),?\s+[\"“]([^\"”]+)[\"”]")
# docs/x.md#anchor anywhere; (x.md#anchor) and (#anchor) in a Markdown link.
LINK = re.compile(r"(docs/[\w.-]+\.md)#([\w-]+)")
RELATIVE_LINK = re.compile(r"\]\(([\w.-]+\.md)?#([\w-]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)
BOLD_TERM = re.compile(r"^\s*[-*]\s+\*\*([^*]+)\*\*", re.MULTILINE)


@cache
def headings(doc: str) -> list[str]:
    return [title.replace("`", "") for title in HEADING.findall((ROOT / doc).read_text())]


@cache
def citable(doc: str) -> set[str]:
    names = set()
    for title in headings(doc):
        names |= {title, re.split(r"[:,]", title)[0].strip()}
        if ": " in title:
            names.add(title.split(": ", 1)[1])
    return names | set(BOLD_TERM.findall((ROOT / doc).read_text()))


@cache
def anchors(doc: str) -> set[str]:
    """GitHub's: lowercase, punctuation dropped, spaces as hyphens, a repeat numbered."""
    made, seen = set(), {}
    for title in headings(doc):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        repeat = seen.get(slug, 0)
        seen[slug] = repeat + 1
        made.add(slug if repeat == 0 else f"{slug}-{repeat}")
    return made


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in listed.splitlines() if Path(name).suffix in TEXT_SUFFIXES or "." not in name]


def broken_in(where: str, text: str, *, doc_name: str | None = None) -> list[str]:
    """The references of one file's text that lead nowhere; `doc_name`: the
    file is that guide, whose Markdown links may be relative."""
    broken = []
    for match in CITATION.finditer(text):
        # Joined again where it runs over lines: of a comment, or of adjacent string literals.
        title = re.sub(r"'\s*\n\s*'", "", match.group(2))
        doc, title = match.group(1), re.sub(r"\s*\n\s*(#\s*)?", " ", title).strip()
        line = text.count("\n", 0, match.start()) + 1
        if not (ROOT / doc).is_file():
            broken.append(f"{where}:{line}: {doc} does not exist")
        elif title not in citable(doc):
            broken.append(f'{where}:{line}: {doc} has no section "{title}"')
    links = [(m.group(1), m.group(2), m.start()) for m in LINK.finditer(text)]
    if doc_name:
        links += [(f"docs/{m.group(1) or doc_name}", m.group(2), m.start()) for m in RELATIVE_LINK.finditer(text)]
    for doc, anchor, offset in links:
        if not (ROOT / doc).is_file() or anchor not in anchors(doc):
            broken.append(f"{where}:{text.count(chr(10), 0, offset) + 1}: {doc}#{anchor} is no heading")
    return broken


def test_every_reference_to_a_section_of_the_guides_names_one_that_exists():
    broken = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve():
            continue  # its examples lead nowhere on purpose
        try:
            text = path.read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        in_docs = path.parent == DOCS
        broken += broken_in(str(path.relative_to(ROOT)), text, doc_name=path.name if in_docs else None)

    assert broken == []


def test_a_reference_that_leads_nowhere_is_named():
    text = """
    # (docs/operations.md, "Schema changes on a live
    # ledger") and (docs/design.md, "Schema changes on a live ledger"), (docs/limits.md, "Order")
    docs/api.md#rate-limits, docs/api.md#rate-limit, [guide](#holds), [there](design.md#holds)
    (docs/api.md, "a statement"), (docs/api.md, "Names"), (docs/nowhere.md, "Anything")
    """

    assert broken_in("x", text, doc_name="api.md") == [
        'x:3: docs/design.md has no section "Schema changes on a live ledger"',
        'x:3: docs/limits.md has no section "Order"',
        "x:5: docs/nowhere.md does not exist",
        "x:4: docs/api.md#rate-limit is no heading",
        "x:4: docs/design.md#holds is no heading",
    ]


# bench/HISTORY.md, 2026-12-07 03:15 (a comment may break it over lines).
HISTORY_CITATION = re.compile(
    r"bench/HISTORY\.md`?,?\s+(?:#\s*)?\(?\"?(\d{4}-\d{2}-\d{2})(?:\s+(?:#\s*)?(\d{2}:\d{2}))?"
)
HISTORY_STAMP = re.compile(r"^## (\d{4}-\d{2}-\d{2})(?: (\d{2}:\d{2}))?\b", re.MULTILINE)


def history_broken_in(where: str, text: str, history: str) -> list[str]:
    """The citations of bench/HISTORY.md's entries in `text` that name none,
    or, by their day alone, more than one: a reader sent to "2026-11-30"
    when four entries bear that day reads the wrong one."""
    stamps = HISTORY_STAMP.findall(history)
    broken = []
    for match in HISTORY_CITATION.finditer(text):
        day, time = match.groups()
        entries = [stamp for stamp in stamps if stamp[0] == day and (time is None or stamp[1] == time)]
        if len(entries) != 1:
            line = text.count("\n", 0, match.start()) + 1
            cited = f"{day} {time}" if time else day
            broken.append(f"{where}:{line}: bench/HISTORY.md has {len(entries)} entries of {cited}")
    return broken


def test_every_citation_of_the_bench_history_names_one_entry():
    history = (ROOT / "bench" / "HISTORY.md").read_text()
    broken = []
    for path in tracked_text_files():
        if path in (Path(__file__).resolve(), ROOT / "bench" / "HISTORY.md"):
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        broken += history_broken_in(str(path.relative_to(ROOT)), text, history)

    assert broken == []


def test_a_citation_of_the_bench_history_that_names_no_one_entry_is_named():
    history = "## 2026-11-30 09:00: one\n## 2026-11-30 09:30: two\n## 2026-12-01: three\n"
    text = """
    (bench/HISTORY.md, 2026-11-30 09:30) (bench/HISTORY.md, 2026-12-01)
    # (bench/HISTORY.md, 2026-11-30
    # 09:00: ...) (bench/HISTORY.md, 2026-11-30) bench/HISTORY.md ("2026-11-30 10:00")
    """

    assert history_broken_in("x", text, history) == [
        "x:4: bench/HISTORY.md has 2 entries of 2026-11-30",
        "x:4: bench/HISTORY.md has 0 entries of 2026-11-30 10:00",
    ]
