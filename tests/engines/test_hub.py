"""Named models download once from their URL, are checked against their
sha256, are cached, and fail with an actionable message when offline."""

import functools
import hashlib
import http.server
import threading

import pytest
from conftest import free_port
from segstream.engines.hub import ModelAsset, resolve_model
from segstream.stream.errors import ModelError


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    (root / "m.onnx").write_bytes(b"model-bytes")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[assignment]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def test_download_verify_and_cache(server, tmp_path):
    url, root = server
    sha = hashlib.sha256(b"model-bytes").hexdigest()
    registry = {"tiny": ModelAsset(f"{url}/m.onnx", sha, "tiny.onnx")}
    cache = tmp_path / "cache"
    path = resolve_model("tiny", registry, cache)
    assert open(path, "rb").read() == b"model-bytes"
    (root / "m.onnx").unlink()  # a second resolve must not need the network
    assert resolve_model("tiny", registry, cache) == path


def test_corrupt_download_is_rejected(server, tmp_path):
    url, _ = server
    registry = {"tiny": ModelAsset(f"{url}/m.onnx", "0" * 64, "tiny.onnx")}
    with pytest.raises(ModelError, match="corrupt"):
        resolve_model("tiny", registry, tmp_path)
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob("*.part"))


def test_offline_error_says_where_to_put_the_file(tmp_path):
    registry = {"tiny": ModelAsset(f"http://127.0.0.1:{free_port()}/m.onnx", "0" * 64, "tiny.onnx")}
    with pytest.raises(ModelError, match=f"save it as {tmp_path / 'tiny.onnx'}"):
        resolve_model("tiny", registry, tmp_path)


def test_unknown_name_lists_known_models():
    with pytest.raises(ModelError, match="unknown model 'yolo-nope'.*yolov8n-seg-int8"):
        resolve_model("yolo-nope")


def test_a_torchvision_name_says_to_export_it_first():
    with pytest.raises(ModelError, match=r"run `segstream export torchvision:fcn_resnet50`"):
        resolve_model("torchvision:fcn_resnet50")
