"""No path around four eyes: outside the tests, only corrections/services.py
(after a second person's approval, or below the single-approval threshold)
calls what applies a correction: the reversal, the adjustment, and the
unfreezing of a wallet frozen for fraud. Fineract's maker-checker was
bypassed from its web app (fineract web-app #1935); this keeps any view,
admin action, command or task from doing the same here.

Read from the source, every call by name, as test_layering.py reads imports."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPLIERS = {"transaction_reverse", "adjustment_post"}
ALLOWED = {ROOT / "corrections" / "services.py"}


def calls(path: Path) -> set[tuple[str, int]]:
    """(name, line) of each call of an applier, and of each call passing
    second_person_approved, in a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in APPLIERS:
            found.add((name, node.lineno))
        if any(keyword.arg == "second_person_approved" for keyword in node.keywords):
            found.add((f"{name}(second_person_approved=...)", node.lineno))
    return found


def test_only_the_corrections_service_applies_a_correction():
    modules = [
        path
        for path in ROOT.rglob("*.py")
        if not {".venv", "tests", "migrations", "bench"} & set(path.relative_to(ROOT).parts)
    ]
    callers = {
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in modules
        if path not in ALLOWED
        for name, line in calls(path)
    }

    assert calls(ROOT / "corrections" / "services.py"), "the service itself applies them"
    assert callers == set()
