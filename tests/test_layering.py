"""The codebase's layering, enforced: data_pipelines is a library below bertjax, the model
modules see neither configs nor input pipelines, and nothing shipped imports the tests.

Imports are read from the source (every `import` and `from ... import`, function-local ones
included), so a lazy import inside a function counts as much as one at the top.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The network and the things it is built from: they must stay importable without ml_collections
# (configs) or data_pipelines (input), as flax's lm1b models.py and t5x's network layer.
MODEL_MODULES = ("config", "layers", "modeling", "dropout", "losses", "param_layout")


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _top_packages(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def _sources(package: str) -> list[pathlib.Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _sources("data_pipelines"), ids=lambda p: p.name)
def test_data_pipelines_never_imports_bertjax(path):
    assert "bertjax" not in _top_packages(imported_modules(path)), (
        f"{path.relative_to(ROOT)} imports bertjax: data_pipelines is the layer below it")


@pytest.mark.parametrize("name", MODEL_MODULES)
def test_model_modules_see_no_configs_or_input(name):
    found = _top_packages(imported_modules(ROOT / "bertjax" / f"{name}.py"))
    assert not found & {"ml_collections", "data_pipelines", "experiments", "tensorflow"}, found


@pytest.mark.parametrize("package", ["bertjax", "data_pipelines", "experiments", "benchmarks"])
def test_shipped_code_never_imports_tests(package):
    offenders = [str(p.relative_to(ROOT)) for p in _sources(package)
                 if "tests" in _top_packages(imported_modules(p))]
    assert not offenders


def test_bertjax_never_imports_experiments():
    offenders = [str(p.relative_to(ROOT)) for p in _sources("bertjax")
                 if "experiments" in _top_packages(imported_modules(p))]
    assert not offenders


def test_the_checker_sees_lazy_imports(tmp_path):
    # The checker must not be blind to function-local imports (the old layering violations were).
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from bertjax import tokenization\n    import jax.numpy\n")
    assert {"bertjax", "jax"} <= _top_packages(imported_modules(source))
