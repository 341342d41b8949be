"""The apps stand on each other like floors of a house (STYLE.md): the ground
floor, wallet_project, imports no app; clients (API clients and their keys)
knows none; events (the outbox and webhooks) knows clients; wallets knows
those two; transfers knows wallets; reconciliation and corrections know all
below them (and not each other). An app adds to a shared mechanism
by registering from its AppConfig.ready(), never by the floor below reaching up.

Read from the source (every import, at the top or inside a function), so an
import hidden from the start-up path counts too. Tests are left out: a test of
a floor may drive the floors above it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each floor and what it may import, itself included.
BELOW_WALLETS = {"wallet_project", "clients", "events"}
FLOORS = {
    "wallet_project": {"wallet_project"},
    "clients": {"wallet_project", "clients"},
    # Delivery reads which clients hold a live key; nothing here reads a wallet.
    "events": {"wallet_project", "clients", "events"},
    "wallets": {*BELOW_WALLETS, "wallets"},
    "transfers": {*BELOW_WALLETS, "wallets", "transfers"},
    "reconciliation": {*BELOW_WALLETS, "wallets", "transfers", "reconciliation"},
    # Four eyes on corrections: beside reconciliation, on top of transfers.
    "corrections": {*BELOW_WALLETS, "wallets", "transfers", "corrections"},
}


def project_imports(path: Path) -> set[tuple[str, int]]:
    """(top-level project package, line) of every import in a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in FLOORS}
    return found


def modules_of(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "tests" not in p.relative_to(ROOT).parts)


@pytest.mark.parametrize("package", list(FLOORS))
def test_a_floor_imports_nothing_above_it(package):
    reaching_up = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for path in modules_of(package)
        for imported, line in sorted(project_imports(path))
        if imported not in FLOORS[package]
    ]

    assert modules_of(package), f"no modules found under {package}/"
    assert reaching_up == []


def test_the_shared_test_helpers_of_the_ground_floor_import_no_app():
    # wallet_project/tests/__init__.py is imported by every app's tests: it
    # must not drag the apps' models in with the envelope check.
    imported = {name for name, _ in project_imports(ROOT / "wallet_project" / "tests" / "__init__.py")}

    assert imported <= FLOORS["wallet_project"]
