"""google-research/bert's own code, run from a checkout the user provides (a baseline, never vendored).

    python -m benchmarks.original_bert ORIGINAL_DIR SCRIPT.py [script flags...]

The checkout (github.com/google-research/bert; the figures in benchmarks/README.md used commit
eedf5716ce1268e56f0a50264a88cafad334ac61) stays outside this repository. Its modules are TF1 code
(`tf.flags`, `tf.gfile`, `tf.python_io`, `tf.logging`); this module imports them with
`tensorflow.compat.v1` standing in for `tensorflow`, which changes no line of their algorithms.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import runpy
import sys
import types


def _checked_file(original_dir: str, file_name: str) -> str:
    path = os.path.join(original_dir, file_name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"original_dir={original_dir}: no {file_name} there; pass a checkout of "
            "github.com/google-research/bert")
    return path


@contextlib.contextmanager
def _tf1_as_tensorflow(original_dir: str):
    """While active, `import tensorflow` gives tf.compat.v1 and the checkout is importable."""
    import tensorflow as tf

    saved = sys.modules["tensorflow"]
    sys.modules["tensorflow"] = tf.compat.v1
    sys.path.insert(0, original_dir)
    try:
        yield
    finally:
        sys.modules["tensorflow"] = saved
        sys.path.remove(original_dir)


def load_module(original_dir: str, module_name: str) -> types.ModuleType:
    """Imports `module_name`.py (e.g. "tokenization") from the checkout under a private name."""
    path = _checked_file(original_dir, f"{module_name}.py")
    with _tf1_as_tensorflow(original_dir):
        spec = importlib.util.spec_from_file_location(f"original_bert_{module_name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def script_command(original_dir: str, script: str, args: list[str]) -> list[str]:
    """The argv that runs the checkout's `script` (e.g. create_pretraining_data.py) in a subprocess."""
    _checked_file(original_dir, script)
    return [sys.executable, "-m", "benchmarks.original_bert", original_dir, script, *args]


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    original_dir, script = os.path.abspath(argv[1]), argv[2]
    path = _checked_file(original_dir, script)
    sys.argv = [path, *argv[3:]]
    with _tf1_as_tensorflow(original_dir):
        runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv)
