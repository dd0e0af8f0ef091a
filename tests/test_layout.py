"""The 0.2 package layout: a core top level over subpackages, old paths resolving with a warning, and no plotting
dependency in the core."""

import subprocess
import sys

import pytest

import diffmrio

SUBPACKAGES = ("chain", "datasets", "health", "scenarios", "supply_chain", "tables")


def test_top_level_is_the_core_and_the_subpackages():
    public = {n for n in dir(diffmrio) if not n.startswith("_")}
    assert set(SUBPACKAGES) <= public
    assert "Chain" not in public and "ras" not in public and "structural_paths" not in public
    assert len(public - set(SUBPACKAGES)) <= 32, sorted(public)


@pytest.mark.parametrize(("old", "new"), [
    ("Chain", "chain"), ("monte_carlo", "chain"), ("ras", "tables"), ("read_wiod", "tables"),
    ("structural_path_analysis", "supply_chain"), ("gini", "scenarios"), ("footprint_gradients", "scenarios"),
])
def test_moved_names_resolve_with_a_deprecation_warning(old, new):
    with pytest.warns(DeprecationWarning, match=rf"diffmrio\.{old} moved to diffmrio\.{new}\.{old}"):
        obj = getattr(diffmrio, old)
    assert obj is getattr(getattr(diffmrio, new), old)


def test_from_import_of_a_moved_name_warns_once_at_the_users_line():
    """`from ctm_interface import ReferenceCTM` warned twice under simplefilter("always"): importlib's
    `_handle_fromlist` looks the name up (hasattr) before the import statement does."""
    import warnings

    import ctm_interface.reference

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        from ctm_interface import ReferenceCTM
        from diffmrio import Chain
    msgs = [str(w.message) for w in rec if issubclass(w.category, DeprecationWarning)]
    assert len(msgs) == 2, msgs
    assert msgs[0].startswith("ctm_interface.ReferenceCTM moved to ctm_interface.reference.ReferenceCTM")
    assert msgs[1].startswith("diffmrio.Chain moved to diffmrio.chain.Chain")
    assert all(w.filename == __file__ for w in rec)  # attributed to the import line, not to importlib
    assert ReferenceCTM is ctm_interface.reference.ReferenceCTM and Chain is diffmrio.chain.Chain
    with warnings.catch_warnings(record=True) as rec:  # plain attribute access: one warning each time
        warnings.simplefilter("always")
        ctm_interface.ReferenceCTM  # noqa: B018
        ctm_interface.ReferenceCTM  # noqa: B018
    assert len(rec) == 2


def test_demo_pipeline_moved_out_of_datasets():
    import diffmrio.demo

    with pytest.warns(DeprecationWarning, match=r"diffmrio\.datasets\.demo_chain moved to diffmrio\.demo"):
        assert diffmrio.datasets.demo_chain is diffmrio.demo.demo_chain


def test_unknown_names_still_raise_attribute_error():
    import ctm_interface

    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        diffmrio.not_a_name  # noqa: B018
    with pytest.raises(AttributeError, match="module 'ctm_interface' has no attribute 'not_a_name'"):
        ctm_interface.not_a_name  # noqa: B018


CTM_MOVED = ("ADJOINT_VARIABLES", "COMPONENTS", "CONC_VARIABLES", "LEVELS", "REGIONS", "SEASONS", "SPECIES",
             "CTMBudget", "CTMGrid", "CTMResult", "DemoDomain", "ReferenceCTM", "demo_base_emissions", "demo_domain",
             "pm25_from_components", "population_weighted_pm25")  # fmt: skip


def test_ctm_interface_top_level_has_no_reference_ctm_names():
    """The reference CTM and its demo domain live in ctm_interface.reference; the top level holds the file I/O,
    grids, regions, vocabulary, ensembles and run folders."""
    import ctm_interface

    public = {n for n in dir(ctm_interface) if not n.startswith("_")}
    assert not public & set(CTM_MOVED), sorted(public & set(CTM_MOVED))
    assert {"read_run_folder", "collect_runs", "region_kernel", "reference"} <= public


@pytest.mark.parametrize("name", CTM_MOVED)
def test_ctm_interface_old_names_warn_and_resolve_to_the_same_objects(name):
    import ctm_interface
    import ctm_interface.reference

    with pytest.warns(DeprecationWarning, match=rf"ctm_interface\.{name} moved to ctm_interface\.reference\.{name};"):
        obj = getattr(ctm_interface, name)
    assert obj is getattr(ctm_interface.reference, name)


def test_ctm_interface_old_from_import_warns():
    """`from ctm_interface import ReferenceCTM` (the form users wrote) goes through the same warning, which the
    test run's filter (pyproject) makes an error, so none is left in the repository."""
    import ctm_interface.reference

    with pytest.warns(DeprecationWarning, match="the old path will be removed in diffmrio 0.3"):
        from ctm_interface import ReferenceCTM
    assert ReferenceCTM is ctm_interface.reference.ReferenceCTM


def test_every_subpackage_name_is_importable_and_documented():
    """Each public name of a subpackage is rendered on the API pages (so the docs list the namespaces): named in a
    `::: namespace.name` block, or the whole namespace rendered by `::: namespace`, whose `__all__` (what
    mkdocstrings then lists) holds every public name."""
    import importlib
    import re
    from pathlib import Path
    from types import ModuleType

    import diffmrio.demo  # noqa: F401  (not imported by `import diffmrio`)

    api = "".join(p.read_text() for p in (Path(__file__).parents[1] / "docs" / "api").glob("*.md"))
    blocks = set(re.findall(r"^::: ([\w.]+)\s*$", api, flags=re.M))
    namespaces = [f"diffmrio.{s}" for s in SUBPACKAGES] + ["diffmrio.demo", "ctm_interface.spectral"]
    missing = []
    for ns in namespaces:
        mod = importlib.import_module(ns)
        public = {n for n in dir(mod) if not n.startswith("_") and not isinstance(getattr(mod, n), ModuleType)}
        if ns in blocks:  # the whole namespace on one page: mkdocstrings lists its __all__
            missing += [f"{ns}.{n} (not in __all__)" for n in sorted(public - set(getattr(mod, "__all__", ())))]
        else:
            missing += [f"{ns}.{n}" for n in sorted(public) if f"{ns}.{n}" not in blocks]
    assert not missing, f"not on docs/api: {missing}"


def test_the_core_does_not_import_matplotlib():
    code = "import sys, diffmrio, diffmrio.chain, diffmrio.tables, diffmrio.health; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_docs_the_code_cites_are_in_the_repository():
    """Issue 11 item 6: every docs page a docstring or comment cites (`docs/<page>.md`) is a file of the
    repository, every cited section of the science page (`science.md, section N` or a quoted heading) exists,
    and nothing cites the design notes that were never in the repository or a path outside it."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    science = " ".join((root / "docs" / "science.md").read_text().split())
    sections = set(re.findall(r"## (\d+)\. ", science))
    bad = []
    for path in sorted(p for d in ("diffmrio", "surrogate", "ctm_interface", "experiments", "benchmarks")
                       for p in (root / d).rglob("*.py")):  # fmt: skip
        text = path.read_text()
        name = path.relative_to(root)
        bad += [f"{name}: docs/{page}" for page in re.findall(r"docs/([\w/]+\.md)", text)
                if not (root / "docs" / page).is_file()]  # fmt: skip
        bad += [f"{name}: science.md section {n}" for n in re.findall(r"science\.md,? section (\d+)", text)
                if n not in sections]  # fmt: skip
        bad += [f"{name}: science.md {q!r}" for q in re.findall(r'science\.md, "([^"]+)"', text)
                if " ".join(q.split()) not in science]  # fmt: skip
        bad += [f"{name}: {ref}" for ref in ("ARCHITECTURE.md", "SCIENCE.md", "STYLE.md", "RUN_FOLDER.md", "/work/")
                if ref in text]  # fmt: skip
    assert sections == {str(i) for i in range(1, 8)}
    assert not bad, bad


PACKAGES = ("diffmrio", "surrogate", "ctm_interface")

#: imports of our own modules inside a function body that stay there, each with its reason: (file or folder,
#: imported module prefix) -> reason. Anything else imports at module top, so an import circle cannot hide.
LAZY_IMPORTS = {
    ("diffmrio/cli.py", "diffmrio"):
        "the command line loads a subcommand's modules only when that subcommand runs (`diffmrio --help` stays light)",
    ("diffmrio/_cli/", ""):
        "the command line loads a subcommand's modules only when that subcommand runs (`diffmrio --help` stays light)",
    ("diffmrio/chain/_chain.py", "surrogate"):
        "optional within our packages: a Chain without an emulator never loads surrogate; with one, the user's "
        "emulator has already imported it (Chain.__check_init__'s isinstance check)",
}


def _module_of(path, root) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(node, package: str) -> list[str]:
    """The absolute names an Import/ImportFrom node imports (relative ones resolved against `package`)."""
    import ast

    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        return [".".join(base + ([node.module] if node.module else []))]
    return [node.module or ""]


def test_no_module_imports_our_own_modules_inside_a_function():
    """Issue 11: import circles are broken, not hidden by lazy imports. Every import of a module of diffmrio,
    surrogate or ctm_interface by one of their modules is at module top, except the allow-listed ones above."""
    import ast
    from pathlib import Path

    root = Path(__file__).parents[1]
    found, used = [], set()
    for path in sorted(p for d in PACKAGES for p in (root / d).rglob("*.py")):
        name = _module_of(path, root)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        rel = path.relative_to(root).as_posix()
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                for mod in _imported_modules(node, package):
                    if mod.split(".")[0] not in PACKAGES:
                        continue
                    allowed = [k for k in LAZY_IMPORTS if rel.startswith(k[0]) and mod.startswith(k[1])]
                    used.update(allowed)
                    if not allowed:
                        found.append(f"{rel}:{node.lineno} {fn.name}() imports {mod}")
    assert not found, "move these imports to the module top (or allow-list one with its reason):\n" + "\n".join(found)
    assert used == set(LAZY_IMPORTS), f"allow-list entries no longer needed: {set(LAZY_IMPORTS) - used}"


def test_experiments_use_public_names_of_the_packages():
    """An experiment imports the packages' public names, not their private modules (`from diffmrio._x import`,
    `import surrogate._x`, `from diffmrio.datasets import _x`); experiments._common is the one door to the
    atomic writers of diffmrio._io."""
    import ast
    from pathlib import Path

    root = Path(__file__).parents[1]
    bad = {}
    for path in sorted((root / "experiments").glob("*.py")):
        if path.name == "_common.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for mod in mods:
                parts = mod.split(".")
                if parts[0] in PACKAGES and any(p.startswith("_") for p in parts[1:]):
                    bad.setdefault(path.name, []).append(f"{node.lineno}: {mod}")
    assert not bad, f"private modules imported by experiments (use the public names): {bad}"
