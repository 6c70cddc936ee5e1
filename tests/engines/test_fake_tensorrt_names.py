"""The TensorRT test double uses only names the real TensorRT of the major
version it claims defines: a call the double accepts is a call the real
bindings have. The real names come from NVIDIA's bindings wheels
(tests/engines/tensorrt_api/refresh.py), since TensorRT itself cannot be
imported on a machine without a GPU."""

import ast
import inspect
import textwrap
from pathlib import Path
from types import SimpleNamespace

import fake_tensorrt
import pytest

API = Path(__file__).parent / "tensorrt_api"
# What the double adds for the tests to read or steer, or keeps for its own bookkeeping; the real
# objects have none of these (listed, since the suffix rule below would find "inputs" in "num_inputs").
FAKE_ONLY = {"FAIL", "PARSE_ERRORS", "last_config", "last_network", "shapes", "data", "flags", "pools", "profiles",
             "timing_cache", "calibration_profile", "OTHER", "errors", "inputs", "layers", "network", "output_types",
             "severity", "created_with", "parsed"}


def real_names(major: str) -> list[str]:
    lines = (API / f"names-{major}.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def defined(name: str, names: list[str]) -> bool:
    """In the bindings: a string ends with it (the compiler folds "Builder" into "IBuilder")."""
    return any(n.endswith(name) for n in names)


def instance_attributes(cls: type) -> set[str]:
    """The `self.x` a class's __init__ assigns."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
    except (OSError, TypeError):
        return set()
    out = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            for item in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) and item.value.id == "self":
                    out.add(item.attr)
    return out


def double_names() -> set[str]:
    """Every public name of the double: module attributes, enum members, and the
    methods, properties and attributes of the objects it hands out."""
    names = set()
    for name, value in vars(fake_tensorrt).items():
        if name.startswith("__") or name in ("annotations", "SimpleNamespace"):
            continue
        if inspect.isfunction(value) and value.__module__ == fake_tensorrt.__name__ and name.startswith("_"):
            continue  # the double's own helpers
        if not name.startswith("_"):
            names.add(name)
        if isinstance(value, SimpleNamespace):
            names |= set(vars(value))
        if inspect.isclass(value) and value.__module__ == fake_tensorrt.__name__:
            names |= {n for n in vars(value) if not n.startswith("_")}
            names |= instance_attributes(value)
    return {n for n in names if not n.startswith("_")} - FAKE_ONLY


def test_the_double_uses_only_names_tensorrt_10_defines():
    assert fake_tensorrt.__version__.startswith("10.")
    names = real_names("10")
    missing = sorted(n for n in double_names() if not defined(n, names))
    assert not missing, f"not in TensorRT 10's bindings: {missing}"


@pytest.mark.parametrize("name", ["IInt8EntropyCalibrator2", "set_output_type", "PREFER_PRECISION_CONSTRAINTS",
                                  "set_calibration_profile", "int8_calibrator"])
def test_tensorrt_11_removed_what_weak_typing_needs(name):
    """Why an installed TensorRT 11 is refused today: the calls that set layer precision
    and calibrate INT8 are in 10's bindings and not in 11's (NVIDIA's migration guide)."""
    assert defined(name, real_names("10")) and not defined(name, real_names("11"))


def test_strong_typing_exists_in_both():
    for major in ("10", "11"):
        assert defined("STRONGLY_TYPED", real_names(major)) and defined("NetworkDefinitionCreationFlag",
                                                                         real_names(major))
