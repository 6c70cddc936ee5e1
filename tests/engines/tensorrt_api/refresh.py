"""Refresh the lists of names the real TensorRT Python bindings define.

    python tests/engines/tensorrt_api/refresh.py 10.13.3.9 11.4.0.106

TensorRT cannot be imported without NVIDIA's libraries and a GPU, so the
test double in tests/engines/fake_tensorrt.py is checked against the names
compiled into the bindings instead: `pip download` fetches NVIDIA's
`tensorrt-cu12-bindings` wheel of each version (about 1 MB, no GPU needed),
and every identifier-like string in its `tensorrt.so` is kept. The compiler
merges a string into the end of a longer one ("Builder" into "IBuilder"), so
each identifier is kept as the run of identifier characters that ends a
string: a name is in the bindings when one of these ends with it
(`test_fake_tensorrt_names.py`). Writes names-<major>.txt beside this file.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TAIL = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*$")


def identifiers(library: bytes) -> set[str]:
    """The identifier each printable string of 3+ characters ends with."""
    out = set()
    for chunk in re.findall(rb"[\x20-\x7e]{3,}", library):
        tail = TAIL.search(chunk)
        name = tail.group().decode() if tail else ""
        if 3 <= len(name) <= 48 and not name.startswith("_Z"):  # not C++'s mangled symbols
            out.add(name)
    return out


def main() -> None:
    for version in sys.argv[1:] or ["10.13.3.9", "11.4.0.106"]:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                            f"tensorrt-cu12-bindings=={version}"], check=True)
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as z:
                library = z.read(next(n for n in z.namelist() if n.endswith("tensorrt.so")))
        names = sorted(identifiers(library))
        out = HERE / f"names-{version.split('.')[0]}.txt"
        out.write_text(f"# tensorrt-cu12-bindings {version}: identifiers ending the strings of tensorrt.so\n"
                       + "\n".join(names) + "\n")
        print(f"{out}: {len(names)} names from {wheel.name}")


if __name__ == "__main__":
    main()
