"""Who may import whom (docs/ARCHITECTURE.md), checked on the product's own source.

Every import statement of every product module is read with ``ast`` (imports inside functions too),
so a rule broken anywhere fails here, with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("vom", "inventory", "provisioning", "availability")


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found.append((name, path))
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    imported = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported += [(node.lineno, node.module)]
            imported += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return imported


MODULES = _modules()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(f"{prefix}.")


# (who, may not import, why)
RULES = [
    ("inventory", "provisioning", "the inventory knows no other app: they use it, not the reverse"),
    ("inventory", "availability", "the inventory knows no other app: they use it, not the reverse"),
    ("provisioning", "availability", "provisioning does not depend on availability"),
    ("provisioning", "inventory.views", "the house's views are in vom.web, not in the inventory"),
    ("provisioning", "inventory.api", "the house's API classes are in vom.web, not in the inventory"),
    ("availability", "inventory.views", "the house's views are in vom.web, not in the inventory"),
    ("availability", "inventory.api", "the house's API classes are in vom.web, not in the inventory"),
    ("vom.jobs", "inventory", "the job core serves every app and names none"),
    ("vom.jobs", "provisioning", "the job core serves every app and names none"),
    ("vom.web", "inventory", "the house serves every app and names none"),
    ("vom.web", "provisioning", "the house serves every app and names none"),
    ("vom.templatetags", "inventory", "the formatting tags serve every app"),
    ("inventory.drivers", "django.db", "drivers never touch the ORM: plain data in, plain data out"),
    ("inventory.drivers", "inventory.models", "drivers never touch the ORM: plain data in, plain data out"),
    ("inventory.drivers", "inventory.services", "services call drivers, not the reverse"),
    ("vom.jobs.broker", "vom.jobs.tasks", "the broker sends by name; tasks call the core, not the reverse"),
    ("vom.jobs.broker", "vom.jobs.runner", "the broker sends by name; tasks call the core, not the reverse"),
    ("vom.jobs.lifecycle", "vom.jobs.runner", "the runner uses the lifecycle, not the reverse"),
    ("vom.jobs.lifecycle", "vom.jobs.tasks", "tasks call the core, not the reverse"),
]
SERVICES = ("inventory.services", "provisioning.services", "vom.jobs.lifecycle", "vom.jobs.runner")


@pytest.mark.parametrize(("who", "forbidden", "why"), RULES, ids=[f"{w}-not-{f}" for w, f, _ in RULES])
def test_who_may_import_whom(who, forbidden, why):
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for name, path in MODULES
        if _within(name, who)
        for line, imported in _imports(path)
        if _within(imported, forbidden)
    ]
    assert not broken, f"{why}:\n" + "\n".join(broken)


def test_the_product_never_imports_test_code():
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for _, path in MODULES
        for line, imported in _imports(path)
        if _within(imported, "tests") or _within(imported, "pytest")
    ]
    assert not broken, "\n".join(broken)


def test_services_never_import_tasks_and_templatetags_never_import_views():
    broken = []
    for name, path in MODULES:
        for line, imported in _imports(path):
            if any(_within(name, s) for s in SERVICES) and imported.rsplit(".", 1)[-1] == "tasks":
                broken.append(f"{path.relative_to(ROOT)}:{line} (a service) imports {imported}")
            if ".templatetags." in f".{name}." and ".views" in f".{imported}":
                broken.append(f"{path.relative_to(ROOT)}:{line} (template tags) imports {imported}")
    assert not broken, "\n".join(broken)


def test_no_product_module_is_over_800_lines():
    long = {
        str(path.relative_to(ROOT)): count for _, path in MODULES if (count := len(path.read_text().splitlines())) > 800
    }
    assert not long, f"split these by what their parts are: {long}"


def test_the_rules_see_the_imports_they_judge():
    """The checker itself: it finds an import it must find (else every rule above passes vacuously)."""
    found = {
        imported for name, path in MODULES if name == "provisioning.services.disks" for _, imported in _imports(path)
    }
    assert "inventory.models" in found and "vom.jobs.lifecycle" in found
