"""Every benchmark does its work when run as a script: `bench/run_all.py` starts each one as
`python bench/bench_<name>.py` and would report exit 0 for a file that only defines functions."""

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _entry_point(tree: ast.Module) -> str | None:
    """How the script runs: 'main-guard' (an `if __name__ == "__main__"` block calling main()),
    'top-level' (a top-level sys.exit(...), for scripts without main()), or None."""
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            if any(isinstance(n, ast.Call) and ast.unparse(n.func) == "main" for n in ast.walk(node)):
                return "main-guard"
    defines_main = any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
    if not defines_main and any(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                                and ast.unparse(n.value.func) == "sys.exit" for n in tree.body):
        return "top-level"
    return None


@pytest.mark.parametrize("script", sorted(BENCH.glob("bench_*.py")), ids=lambda p: p.stem)
def test_benchmark_runs_when_started_as_a_script(script):
    assert _entry_point(ast.parse(script.read_text())), f"{script.name} never calls its main()"
