"""The house rules a newcomer relies on: small modules, each package saying what it owns, the
runtime requirements free of test tools, and layer contracts that catch a wrong-way import."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "outreach_core"
MAX_LINES = 400
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _modules() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if "migrations" not in p.parts)


def test_no_module_over_the_line_limit() -> None:
    """Verify every module of outreach_core (migrations aside) is under 400 lines."""
    long = {
        str(p.relative_to(REPO)): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) >= MAX_LINES
    }
    assert long == {}


def test_every_package_says_what_it_owns() -> None:
    """Verify each package's __init__.py opens with a docstring."""
    silent = [
        str(init.relative_to(REPO))
        for init in CORE.rglob("__init__.py")
        if "migrations" not in init.parts and not ast.get_docstring(ast.parse(init.read_text()))
    ]
    assert silent == []


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_runtime_requirements_hold_no_test_tool() -> None:
    """Verify requirements.txt is the runtime alone, every line pinned, and requirements-dev.txt
    starts from it and adds the test, lint and benchmark tools without pinning anything twice."""
    runtime = _pins(REPO / "requirements.txt")
    dev_path = REPO / "requirements-dev.txt"
    dev = _pins(dev_path)
    assert all(runtime.values()), runtime
    assert all(dev.values()), dev
    tools = {"pytest", "ruff", "moto", "flask", "twisted", "playwright", "hypothesis", "mailmerge"}
    assert tools & set(runtime) == set()
    assert tools <= set(dev)
    assert set(runtime) & set(dev) == set()
    first = next(ln for ln in dev_path.read_text().splitlines() if ln and not ln.startswith("#"))
    assert first == "-r requirements.txt"
    lines = [ln for ln in (REPO / "requirements.txt").read_text().splitlines() if "==" in ln]
    assert len(lines) == len(runtime), "a package pinned twice in requirements.txt"


@pytest.fixture(scope="module")
def core_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package and its contracts copied, so a test can break the copy on purpose."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"lint-imports is not installed beside {sys.executable}: make setup-dev")
    root = tmp_path_factory.mktemp("layout")
    shutil.copytree(CORE, root / "outreach_core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120
    )


def _break(root: Path, module: str, line: str) -> Path:
    path = root / "outreach_core" / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # noqa\n")
    return path


@pytest.mark.parametrize(
    ("module", "wrong_way", "broken"),
    [
        ("domain/planning.py", "from outreach_core.adapters import dns", "Layers"),
        ("adapters/crypto.py", "from outreach_core.services import keys", "Layers"),
        ("services/keys.py", "from outreach_core.entrypoints import signals", "Layers"),
        ("domain/retry.py", "import sqlalchemy", "The domain does no I/O"),
        ("services/compliance.py", "import streamlit", "Only outreach_core.ui imports streamlit"),
        ("errors.py", "from outreach_core.domain import states", "Errors are the bottom"),
    ],
)
def test_layer_contracts_refuse_a_wrong_way_import(
    core_copy: Path, module: str, wrong_way: str, broken: str
) -> None:
    """Verify the contracts hold on the code as it is, and that one import added the wrong
    way (a lower layer importing a higher one, I/O in the domain, streamlit outside the UI)
    makes lint-imports fail naming the contract."""
    kept = _lint_imports(core_copy)
    assert kept.returncode == 0, kept.stdout[-2000:] + kept.stderr[-2000:]
    path = _break(core_copy, module, wrong_way)
    original = path.read_text()
    try:
        refused = _lint_imports(core_copy)
    finally:
        path.write_text(original.replace(f"\n{wrong_way}  # noqa\n", ""))
    assert refused.returncode != 0
    assert "BROKEN" in refused.stdout.upper() and broken in refused.stdout, refused.stdout[-3000:]
