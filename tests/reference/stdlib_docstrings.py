"""Real English text with zero downloads: docstring lines of a fixed set of standard-library modules.

A test-local corpus (the project's full corpus lives in data_pipelines.corpora); the fixed module
list keeps it deterministic for a given Python version and quick (well under a second).
"""

import importlib
import inspect

SAFE_STDLIB_MODULES = (
    "json", "collections", "itertools", "functools", "re", "os", "pathlib", "argparse", "logging",
    "textwrap", "string", "typing", "dataclasses", "inspect", "email", "http.client",
    "urllib.parse", "unittest", "decimal", "fractions", "statistics", "datetime", "calendar",
    "csv", "zipfile", "tarfile", "shutil", "subprocess", "threading", "asyncio",
)


def stdlib_docstring_lines(modules=SAFE_STDLIB_MODULES) -> list[str]:
    """Non-blank docstring lines of `modules` and of their public classes, functions and methods.

    Lines keep their indentation and inner punctuation (doctest prompts, reST markup), which
    exercises the tokenizer well. Order is deterministic; duplicates are kept once.
    """
    seen: set[str] = set()
    lines: list[str] = []

    def add(obj) -> None:
        # Own docstrings only: inspect.getdoc would inherit from base classes, and those vary
        # with what else has been imported (TensorFlow registers classes with collections.abc).
        doc = getattr(obj, "__doc__", None)
        if not isinstance(doc, str) or not doc.strip():
            return
        doc = inspect.cleandoc(doc)
        for line in doc.splitlines():
            if line.strip() and line not in seen:
                seen.add(line)
                lines.append(line)

    for module_name in modules:
        module = importlib.import_module(module_name)
        add(module)
        for name in sorted(vars(module)):
            if name.startswith("_"):
                continue
            member = getattr(module, name)
            if getattr(member, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(member):
                add(member)
                for attribute_name in sorted(vars(member)):
                    if not attribute_name.startswith("_"):
                        add(getattr(member, attribute_name, None))
            elif inspect.isfunction(member) or inspect.isbuiltin(member):
                add(member)
    return lines
