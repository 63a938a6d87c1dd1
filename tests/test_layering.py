"""DESIGN.md's layering: pure domain code imports no storage, web or CLI library."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "ratecard"
FORBIDDEN = {"sqlalchemy", "duckdb", "fastapi", "typer", "clickhouse_driver", "chdb",
             "alembic", "psycopg", "starlette", "uvicorn", "rich", "httpx"}
PURE_PACKAGES = ["pricing", "catalog", "advisor"]
PURE_MODULE_NAMES = {"model.py", "rules.py", "meters.py", "money.py", "clock.py", "errors.py"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def pure_files() -> list[Path]:
    files = [p for pkg in PURE_PACKAGES for p in (SRC / pkg).rglob("*.py")]
    files += [p for p in SRC.rglob("*.py") if p.name in PURE_MODULE_NAMES]
    return sorted(set(files))


def test_pure_modules_import_no_io_library() -> None:
    files = pure_files()
    assert len(files) > 10
    offenders = {str(p.relative_to(SRC)): sorted(imported_roots(p) & FORBIDDEN)
                 for p in files if imported_roots(p) & FORBIDDEN}
    assert offenders == {}


def test_the_check_itself_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "rules.py"
    bad.write_text("import sqlalchemy\nfrom duckdb import connect\n")
    assert imported_roots(bad) & FORBIDDEN == {"sqlalchemy", "duckdb"}
