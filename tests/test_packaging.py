"""What a user installs: one package, `segstream`, that their own `tracking.py`
or `stream.py` cannot shadow, with every subpackage in the wheel."""

from __future__ import annotations

import ast
import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

FOLDERS = ("api", "stream", "engines", "tracking", "pipelines")
OURS = {"stream", "engines", "tracking", "pipelines"}


def _setup_cfg() -> tuple[list[str], dict[str, str]]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    packages = cfg["options"]["packages"].split()
    mapping = dict(line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines())
    return packages, mapping


def test_every_package_folder_ships_under_segstream():
    packages, mapping = _setup_cfg()
    folder_of = {folder: name for name, folder in mapping.items()}
    found = set()
    for top in FOLDERS:
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / top).parts
            found.add(".".join([folder_of[top], *rel]))
    assert sorted(found) == sorted(packages)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(level, module) of every `from ... import` and `import ...` in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out.append((node.level, node.module or ""))
        elif isinstance(node, ast.Import):
            out.extend((0, alias.name) for alias in node.names)
    return out


def test_the_package_imports_itself_relatively():
    """An absolute `from tracking...` inside the package would import the user's tracking.py."""
    wrong = [f"{path.relative_to(REPO)}: {module}"
             for top in FOLDERS for path in (REPO / top).rglob("*.py")
             for level, module in _imports(path) if level == 0 and module.split(".")[0] in OURS | {"segstream"}]
    assert wrong == []


def test_tests_and_benchmarks_import_only_through_segstream():
    """Nothing is imported twice under two names (`stream.types` and `segstream.stream.types`)."""
    wrong = [f"{path.relative_to(REPO)}: {module}"
             for top in ("tests", "bench", "examples") for path in (REPO / top).rglob("*.py")
             for level, module in _imports(path) if level == 0 and module.split(".")[0] in OURS]
    assert wrong == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the tree: an in-tree build/ left by an earlier build
    would ship files that no longer exist."""
    src, out = tmp_path_factory.mktemp("src") / "segstream", tmp_path_factory.mktemp("wheel")
    skip = shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", "out", ".*venv", ".whl", ".gpu-assets")
    shutil.copytree(REPO, src, ignore=skip)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True)
    (path,) = out.glob("segstream-*.whl")
    return path


def test_a_wheel_holds_exactly_one_top_level_package(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"segstream", next(t for t in tops if t.endswith(".dist-info"))}
    assert "segstream/py.typed" in names and "segstream/stream/SCHEMA.md" in names
    assert "segstream/engines/runtimes/registry.py" in names


def test_user_scripts_named_like_our_folders_break_nothing(wheel, tmp_path):
    """A regular (not editable) install, imported from a folder holding the
    scripts users write: tracking.py, stream.py, engines.py, pipelines.py."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as whl:
        whl.extractall(site)  # what pip's install does for a pure-Python wheel
    work = tmp_path / "work"
    work.mkdir()
    for name in OURS:
        (work / f"{name}.py").write_text(f"raise ImportError('the user script {name}.py was imported')\n")
    code = ("import segstream, segstream.pipelines.cli\n"
            "from segstream.tracking.byte import ByteTracker\n"
            "assert segstream.__file__.startswith(%r), segstream.__file__\n"
            "print(segstream.__version__, ByteTracker.__module__)\n") % str(site)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[1] == "segstream.tracking.byte"


def test_version_flag_says_the_installed_version():
    import segstream

    done = subprocess.run([sys.executable, "-m", "segstream", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"segstream {segstream.__version__}"
