"""Named models that segstream can download for users: URL + sha256 + cache.

Downloads happen only when a user names a registered model (never at import),
are verified against the recorded sha256, and land in the cache directory
(`$SEGSTREAM_CACHE`, default `~/.cache/segstream`). Offline, the error says
where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..stream.errors import ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelAsset:
    url: str
    sha256: str
    filename: str
    note: str = ""


# Ultralytics-exported ONNX files published at a fixed commit (weights: AGPL-3.0).
REGISTRY: dict[str, ModelAsset] = {
    "yolov8n-seg-int8": ModelAsset(
        "https://raw.githubusercontent.com/udaypartha/dashcam/474e3f7c0ecd9c020149e75f94aa033e4567b533/yolov8n-seg_int8.onnx",
        "a892891617cbadd34d860f66a866393a8d4c487c49f1474e9b6d9e578332e56a",
        "yolov8n-seg_int8.onnx",
        "YOLOv8n-seg 320, dynamically quantised (ONNX Runtime CPU only)",
    ),
    "yolov8n-int8": ModelAsset(
        "https://raw.githubusercontent.com/udaypartha/dashcam/474e3f7c0ecd9c020149e75f94aa033e4567b533/yolov8n_int8.onnx",
        "378c51e2ea5999e692179a2546c4edad55c37458832f46f1e1ed4215c7fa4613",
        "yolov8n_int8.onnx",
        "YOLOv8n detection 320, dynamically quantised (ONNX Runtime CPU only)",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("SEGSTREAM_CACHE") or Path.home() / ".cache" / "segstream")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(spec: str, registry: Mapping[str, ModelAsset] = REGISTRY, cache: Path | None = None) -> str:
    """A model path for `spec`: an existing file as is, or a registered name
    (downloaded and verified on first use)."""
    if Path(spec).is_file():
        return spec
    asset = registry.get(spec)
    if asset is None and spec.startswith("torchvision:"):
        raise ModelError(f"{spec} is not an ONNX file yet: run `segstream export {spec}` and pass the .onnx it writes")
    if asset is None:
        if spec.endswith(".onnx") or os.sep in spec:
            raise ModelError(f"model file not found: {spec}")
        raise ModelError(f"unknown model {spec!r}: give an .onnx file or one of {', '.join(sorted(registry))}")
    target = (cache or cache_dir()) / asset.filename
    if target.is_file() and sha256_of(target) == asset.sha256:
        return str(target)
    download(asset, target)
    return str(target)


def download(asset: ModelAsset, target: Path, timeout: float = 30.0) -> None:
    """Fetch `asset` to `target` atomically, verifying its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", asset.url, target)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(asset.url, timeout=timeout) as response:
                shutil.copyfileobj(response, tmp)
        except (urllib.error.URLError, OSError) as err:
            os.unlink(tmp.name)
            reason = getattr(err, "reason", err)
            raise ModelError(
                f"cannot download {asset.url} ({reason}); if offline, fetch it elsewhere and save it as {target}"
            ) from None
    got = sha256_of(Path(tmp.name))
    if got != asset.sha256:
        os.unlink(tmp.name)
        raise ModelError(f"download of {asset.url} is corrupt: sha256 {got}, expected {asset.sha256}")
    os.replace(tmp.name, target)
