"""What a script gets from `import segstream`: the whole pipeline in one call,
and the parts it is made of, on the real sample video and model."""

from __future__ import annotations

import pytest
import segstream


def test_run_gives_every_tracked_frame_to_the_callback_and_writes_outputs(video, seg_model, tmp_path):
    seen = []
    stats = segstream.run(str(video), str(seg_model), classes=["person"], max_frames=12,
                          export=str(tmp_path / "tracks.txt"), on_frame=lambda f, d: seen.append((f.seq, d)))
    assert stats.frames == 12
    assert [seq for seq, _ in seen] == list(range(12))
    assert all(d.track_ids is not None for _, d in seen)
    assert any(len(d) for _, d in seen[3:])  # people are tracked once their tracks are confirmed
    assert (tmp_path / "tracks.txt").read_text().strip()


def test_run_names_a_bad_option_as_the_config_does(video, seg_model):
    with pytest.raises(segstream.ConfigError, match="trackr"):
        segstream.run(str(video), str(seg_model), trackr="byte")


def test_the_parts_track_people_frame_by_frame(video, seg_model):
    models, tracker = segstream.load_models([str(seg_model)], classes=["person"]), segstream.ByteTracker()
    with segstream.open_source(str(video)) as source:
        tracked = [tracker.update(models(frame)) for frame, _ in zip(source, range(10))]
    models.close()
    assert isinstance(tracked[-1], segstream.Detections)
    assert len(tracked[-1]) >= 2 and tracked[-1].track_ids.min() >= 1
