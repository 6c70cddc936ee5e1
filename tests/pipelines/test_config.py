"""A YAML config holds the same settings as the flags; mistakes are named."""

import pytest
from segstream.pipelines.config import RunConfig, load_config
from segstream.stream.errors import ConfigError


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("source: a.mp4\nmodel: [seg.onnx, pose.onnx]\nconf: 0.4\nclasses: person,car\nsort: {max_age: 5}\n")
    config = load_config(str(path), {"conf": 0.5, "tracker": None})
    assert config.model == ["seg.onnx", "pose.onnx"] and config.classes == ["person", "car"]
    assert config.conf == 0.5 and config.sort.max_age == 5 and config.tracker == "deepsort"


@pytest.mark.parametrize("extra, tracker", [
    ({}, "deepsort"),  # colour appearance is on by default: DeepSORT's cascade uses it
    ({"appearance": "none"}, "byte"),  # motion alone: BYTE
    ({"cmc": True}, "byte"),  # camera motion compensation is BYTE's
    ({"tracker": "sort"}, "sort"),
])
def test_auto_tracker_follows_the_appearance_features(extra, tracker):
    assert RunConfig(source=["a.mp4"], model=["m.onnx"], **extra).tracker == tracker


@pytest.mark.parametrize(
    "text, match",
    [
        ("source: a\nmodel: m\nconff: 0.3\n", "unknown key 'conff' \\(did you mean 'conf'\\? known keys: source, "),
        ("sourc: a\nmodel: m\n", "unknown key 'sourc' \\(did you mean 'source'"),  # not "'source' is required"
        ("source: a\nmodel: m\nconf: high\n", "'conf': Input should be a valid number"),
        ("source: a\nmodel: m\nconf: 3\n", "'conf': Input should be less than or equal to 1"),
        ("source: a\nmodel: m\nsort: {maxage: 3}\n",  # the section's own keys, not the top level's
         "unknown key 'sort.maxage' \\(did you mean 'max_age'\\? known keys: max_age, min_hits, iou_threshold\\)$"),
        ("source: a\nmodel: m\nsemantic: {zzz: 1}\n", "unknown key 'semantic.zzz' \\(known keys: mean, std, "),
        ("source: a\nmodel: m\nexport: out.csv\n", "'export': must end in .txt"),
        ("source: a\nmodel: m\ntracker: sort\ncmc: true\n", "config .*: cmc: camera motion compensation needs tracker: byte$"),
        ("model: m\n", "'source' is required"),
        ("- just\n- a list\n", "must be a mapping"),
        ("source: [a\n", "not valid YAML"),
        ("source: a\nmodel: m\nprecision: int8\ncalib: no-such-frames/\n", "calib: no such video file or image folder: no-such-frames/"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, match):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(str(path))
