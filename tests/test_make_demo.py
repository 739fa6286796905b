"""data/make_demo.py: the synthetic demo data set's contents, and that it is seeded."""

import io

import numpy as np
import pytest
from PIL import Image

from data.make_demo import GENERATORS, make_demo
from data.schema import load_table
from data.validate import validate


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """The demo set written twice with seed 0 and once with seed 1 (6 identities, 8 fakes per generator)."""
    root = tmp_path_factory.mktemp("demo")
    return {
        name: make_demo(root / name, seed=seed, identities=6, fakes_per_generator=8)
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    }


def test_make_demo_contents(demos):
    table = load_table(demos["a"])
    assert len(table) == 2 * 6 * 4 + 6 * 2 * 4  # 4-frame videos: 6 real per dataset, 2 fake per generator
    assert set(table.column("generator")) == {"real", *GENERATORS}
    assert set(table.column("forgery_type")) == {"real", "EFS", "AM", "FS"}
    assert set(table.column("source_dataset")) == {"DemoFace-A", "DemoFace-B"}
    for generator, forgery, label in zip(table.column("generator"), table.column("forgery_type"), table.labels):
        assert label == (generator != "real") and (forgery == "real") == (generator == "real")
        if generator != "real":
            assert forgery == GENERATORS[generator]
    assert int((table.labels == 0).sum()) == 48 and int((table.labels == 1).sum()) == 48
    splits_of_video = {}
    for video, split in zip(table.column("video_id"), table.column("split")):
        splits_of_video.setdefault(video, set()).add(split)
    assert len(splits_of_video) == 24 and all(len(s) == 1 for s in splits_of_video.values())
    # every generator applied to both source datasets; identities (targets and donors) never cross splits
    made_from = {
        (g, d) for g, d, y in zip(table.column("generator"), table.column("source_dataset"), table.labels) if y
    }
    assert made_from == {(g, d) for g in GENERATORS for d in ("DemoFace-A", "DemoFace-B")}
    splits_of_person = {}
    for people, split in zip(table.column("identity"), table.column("split")):
        for person in people.split(";"):
            splits_of_person.setdefault(person, set()).add(split)
    assert all(len(s) == 1 for s in splits_of_person.values())
    assert any(";" in people for people in table.column("identity"))  # face swaps name both people

    # the frames of a video are one moving face: far closer to each other than to another video of the same class
    def pixels(row):
        return np.asarray(Image.open(table.resolve(row)), dtype=np.float64)

    same_video = np.abs(pixels(0) - pixels(1)).mean()
    other_video = np.abs(pixels(0) - pixels(4)).mean()
    assert table.column("video_id")[0] == table.column("video_id")[1] != table.column("video_id")[4]
    assert same_video < 0.5 * other_video
    for path in table.resolved_paths():
        with Image.open(path) as image:
            assert (image.format, image.size, image.mode) == ("PNG", (64, 64), "RGB")
    assert validate(demos["a"], out=io.StringIO()) == 0


def test_make_demo_is_seeded(demos):
    same, other = demos["b"], demos["c"]
    assert demos["a"].read_bytes() == same.read_bytes()
    paths = load_table(demos["a"]).column("path")
    for relative in (paths[0], paths[len(paths) // 2], paths[-1]):
        original = (demos["a"].parent / relative).read_bytes()
        assert original == (same.parent / relative).read_bytes()
        assert original != (other.parent / relative).read_bytes()
    assert demos["a"].read_bytes() != other.read_bytes()


def test_the_files_are_the_same_whatever_the_number_of_processes(tmp_path, demos):
    # every random draw is made in one sequence before the frames are drawn: two processes write what one writes
    two = make_demo(tmp_path / "two", seed=0, identities=6, fakes_per_generator=8, workers=2)
    one = demos["a"]
    assert two.read_bytes() == one.read_bytes()
    files = sorted(p.relative_to(one.parent) for p in one.parent.rglob("*.png"))
    assert len(files) == 96
    assert all((two.parent / f).read_bytes() == (one.parent / f).read_bytes() for f in files)
    with pytest.raises(ValueError, match="workers must be 1 or more"):
        make_demo(tmp_path / "none", identities=6, fakes_per_generator=8, workers=0)
