"""The error codes: every one the code can answer with is in the registry
(wallet_project/error_codes.py) and documented in docs/api.md, and nothing is
listed or documented that the code can no longer raise.

"Can raise" is read off the code itself: every exception class the handler
renders (DRF's and ours, by `default_code`; a ValidationError renders as
validation_error), and every code written out where a response is built by
hand (`error_body(..., "code")`, the Django-level handlers, a `"code": ...`
dict entry).
"""

import ast
import importlib
import pkgutil
import re
from pathlib import Path

from django.conf import settings
from rest_framework import exceptions

from wallet_project.error_codes import ERROR_CODES

BASE_DIR = Path(settings.BASE_DIR)
PACKAGES = ("wallet_project", "clients", "events", "wallets", "transfers", "reconciliation")
API_DOCS = BASE_DIR / "docs" / "api.md"


def project_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if ".tests" in info.name or ".migrations" in info.name:
                continue
            names.append(info.name)
    return names


def exception_codes() -> set[str]:
    """default_code of every concrete APIException class of DRF and the project."""
    for name in project_modules():
        importlib.import_module(name)
    codes = set()
    pending = [exceptions.APIException]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not cls.__module__.startswith(("rest_framework.exceptions", *PACKAGES)):
            continue
        if issubclass(cls, exceptions.ValidationError):
            codes.add("validation_error")  # wallet_project.exceptions renders every one so
        elif cls.default_code != exceptions.APIException.default_code:
            codes.add(cls.default_code)
    return codes


def literal_codes() -> dict[str, str]:
    """Codes written out in the source where a response is built by hand: code -> where."""
    found = {}
    for name in project_modules():
        module = importlib.import_module(name)
        path = Path(module.__file__)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            literal = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                position = {"error_body": 1, "json_or_default": 2}.get(node.func.id)
                if position is not None and len(node.args) > position:
                    literal = node.args[position]
                for keyword in node.keywords:
                    if keyword.arg == "code" and node.func.id == "error_body":
                        literal = keyword.value
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "code":
                        literal = value
            if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
                found[literal.value] = f"{path.relative_to(BASE_DIR)}:{node.lineno}"
    return found


def documented_codes() -> dict[str, int]:
    """The "Error codes" table of docs/api.md: code -> status."""
    text = API_DOCS.read_text()
    section = re.search(r"^## Error codes\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/api.md has no '## Error codes' section"
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", section.group(1), re.M)
    assert rows, "the Error codes section has no table rows like | `code` | 404 | ..."
    codes = dict((code, int(status)) for code, status in rows)
    assert len(codes) == len(rows), "a code is documented twice"
    return codes


def test_every_code_the_code_can_raise_is_in_the_registry():
    raised = exception_codes() | set(literal_codes())

    assert raised - set(ERROR_CODES) == set(), literal_codes()


def test_every_code_in_the_registry_can_still_be_raised():
    raised = exception_codes() | set(literal_codes())

    assert set(ERROR_CODES) - raised == set()


def test_every_code_is_documented_with_its_status_and_nothing_more():
    documented = documented_codes()

    assert set(ERROR_CODES) - set(documented) == set(), "in the registry, missing from docs/api.md"
    assert set(documented) - set(ERROR_CODES) == set(), "documented in docs/api.md, but no such code"
    assert {code: entry.status for code, entry in ERROR_CODES.items()} == documented


def test_exception_classes_agree_with_the_registry_on_status():
    for name in project_modules():
        importlib.import_module(name)
    pending = [exceptions.APIException]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        code = cls.default_code
        if code in ERROR_CODES and not issubclass(cls, exceptions.ValidationError):
            assert ERROR_CODES[code].status == cls.status_code, cls
