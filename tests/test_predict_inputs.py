"""predict.py's inputs and console at scale: folders listed in path order without hidden files, and a console that
lists the first inputs and counts the rest (every input is in inputs.csv)."""

from engine.inference import collect_inputs, console_summary


def test_a_folder_is_listed_in_path_order_without_hidden_or_non_media_files(tmp_path):
    names = [
        "a.png",
        "a/b.png",
        "a/c/d.mp4",
        "a-b.jpg",
        "B.webp",
        ".hidden.png",
        ".cache/x.png",
        "a/.thumbs/y.png",
        "notes.txt",
        "z/clip.MOV",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    items = collect_inputs([tmp_path, tmp_path / "missing.png"])
    # Path order, component by component ("a/..." before "a-b.jpg" and "a.png"), as sorted(Path) gives it
    expected = ["B.webp", "a/b.png", "a/c/d.mp4", "a-b.jpg", "a.png", "z/clip.MOV"]
    assert expected == [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path / name for name in expected)]
    assert [item.path for item in items[:-1]] == [tmp_path / name for name in expected]
    assert [item.kind for item in items[:-1]] == ["image", "image", "video", "image", "image", "video"]
    assert items[-1].status == f"error: {tmp_path / 'missing.png'} does not exist"
    (tmp_path / "empty").mkdir()
    (folder,) = collect_inputs([tmp_path / "empty"])
    assert folder.kind == "folder" and folder.status.startswith("error: no image or video files under")


def _entry(i, score):
    status = "ok" if score is not None else "error: could not be decoded"
    fake = None if score is None else int(score >= 0.3)
    half = None if score is None else int(score >= 0.5)
    return {"input": f"in{i}.png", "kind": "image", "status": status, "frames": 1, "faces": 1, "score": score} | {
        "fake": fake,
        "fake_at_0.5": half,
    }


def test_the_console_lists_the_first_inputs_and_counts_all_of_them():
    scores = [0.9, None, 0.4, 0.1, None, 0.6, None]
    summary = [_entry(i, s) for i, s in enumerate(scores)]
    text = console_summary(summary, 0.3, most=2)
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[2:4]] == ["in0.png", "in1.png"] and "in2.png" not in lines[4]
    assert (
        lines[4]
        == "... 5 more inputs in inputs.csv. Of all 7: 4 scored, 3 of them fake at 0.3 and 2 at 0.5; 3 unscored"
    )
    assert lines[5:] == [
        "in1.png: error: could not be decoded",
        "in4.png: error: could not be decoded",
        "... and 1 more unscored inputs: their status is in inputs.csv",
    ]
    everything = console_summary(summary, 0.3)  # below the cap: every input and every reason, no counts line
    assert "more inputs" not in everything and len(everything.splitlines()) == 2 + 7 + 3
