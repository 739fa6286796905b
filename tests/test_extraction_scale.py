"""Face extraction at scale: the source scan, the per-video time split of the summary, the default detect size and
its resume rules, and the extraction benchmark (benchmarks/extraction_scale.py) on a few tiny videos."""

import pytest

from data.faces.extract import find_sources
from data.faces.settings import ExtractionError


def test_two_sources_with_one_name_are_one_sentence_naming_the_first(tmp_path):
    for name in ("b/clip.mp4", "b/clip.avi", "a/x.mp4", "a/x.mkv", "c/only.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ExtractionError, match=r"two sources with the same name 'a/x' .*rename one\.$"):
        find_sources(tmp_path)
    (tmp_path / "a" / "x.mkv").unlink()
    (tmp_path / "b" / "clip.avi").unlink()
    assert [video_id for _, video_id in find_sources(tmp_path)] == ["a/x", "b/clip", "c/only"]
