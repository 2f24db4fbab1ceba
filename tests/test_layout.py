"""The house a newcomer reads (#22): one package whose folders are its layers, imports that
only point down, every folder saying what it owns and may import, and a README Layout that is
the tree itself. These hold the shape, so a new module in the wrong place fails a test."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

PACKAGE = ROOT / "sse_dashboard"
# Each layer, and where it stands: a module may import its own folder's modules and the layers
# below its own (a larger number), never one above. The client library imports none of them.
LAYERS = [("cli", 0), ("app", 1), ("demo", 2), ("web", 2), ("application", 3), ("config", 4), ("alerting", 4), ("export", 4), ("fleet", 4),
          ("sampler", 5), ("exposition", 5), ("ingest", 6), ("storage", 6), ("collectors", 6), ("registry", 7),
          ("events", 7), ("outbound", 8)]
MAX_MODULE_LINES = 700
MAX_CLASS_LINES = 330  # "about 300"


def layer_of(module: str):
    for name, rank in LAYERS:
        prefix = "sse_dashboard." + name
        if module == prefix or module.startswith(prefix + "."):
            return name, rank
    return None, None


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        yield (name[:-len(".__init__")] if name.endswith(".__init__") else name), path


def imports_of(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sse_dashboard"):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("sse_dashboard"))


def test_every_module_has_a_layer_and_imports_only_point_down():
    upward, unplaced = [], []
    for module, path in modules():
        if module in ("sse_dashboard", "sse_dashboard.__main__", "sse_dashboard.client"):
            continue
        folder, rank = layer_of(module)
        if folder is None:
            unplaced.append(module)
            continue
        for target in imports_of(path):
            target_folder, target_rank = layer_of(target)
            if target_folder is not None and target_folder != folder and target_rank <= rank:
                upward.append("%s imports %s" % (module, target))
    assert not unplaced, "modules in no layer (add them to LAYERS, and to the README's Layout): %s" % unplaced
    assert not upward, "imports that point up: %s" % upward


def test_the_client_library_imports_nothing_of_the_package():
    assert list(imports_of(PACKAGE / "client.py")) == []


def test_every_package_folder_says_what_it_owns_and_what_it_may_import():
    for folder in sorted({path.parent for path in PACKAGE.rglob("*.py")} - {PACKAGE}):
        init = folder / "__init__.py"
        assert init.is_file(), "%s has no __init__.py" % folder.relative_to(ROOT)
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert re.search(r"may import", doc, re.I), "%s: its docstring does not say what it may import" % init


def test_no_module_and_no_class_is_too_long_to_read():
    long_modules, long_classes = [], []
    for module, path in modules():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.append((module, text.count("\n")))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                long_classes.append((module, node.name, node.end_lineno - node.lineno + 1))
    assert not long_modules and not long_classes, (long_modules, long_classes)


def test_the_readme_layout_is_the_tree():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    folders = sorted({p.parent.relative_to(PACKAGE).parts[0] for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE})
    top_modules = sorted(p.name for p in PACKAGE.glob("*.py") if not p.name.startswith("__"))
    missing = [f + "/" for f in folders if f + "/" not in block] + [m for m in top_modules if m not in block]
    assert not missing, "README.md, ## Layout does not name: %s" % missing
    for root_dir in ("static/", "examples/", "tests/", "bench/"):
        assert root_dir in block
