"""common.atomic: the one atomic-write primitive keeps the old file on any failure and names a full disk."""

import errno
import os

import pytest

from common.atomic import (
    DiskFullError,
    atomic_folder,
    atomic_output,
    is_disk_full,
    write_bytes_atomic,
    write_text_atomic,
)
from common.errors import UserError


def test_atomic_output_replaces_the_file_only_when_the_write_finishes(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    write_text_atomic(target, "old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(target, "w") as stream:
            stream.write("half of the new")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]  # no temporary left behind
    write_bytes_atomic(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_a_full_disk_is_one_sentence_naming_the_file(tmp_path):
    target = tmp_path / "last.pt"
    write_bytes_atomic(target, b"kept")
    with pytest.raises(DiskFullError, match=r"disk is full writing .*last.pt: the previous last.pt is kept") as caught:
        with atomic_output(target, "wb"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(caught.value, UserError) and target.read_bytes() == b"kept"
    # torch.save's zip writer loses the OSError and says only this:
    assert is_disk_full(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"))
    assert not is_disk_full(RuntimeError("something else")) and not is_disk_full(OSError(errno.EACCES, "denied"))
    with pytest.raises(ValueError):
        with atomic_output(target, "a"):
            pass


def test_a_folder_written_as_a_whole_appears_complete_or_not_at_all(tmp_path):
    target = tmp_path / "exported"
    previous = os.umask(0o022)
    try:
        with atomic_folder(target) as staging:
            (staging / "weights.bin").write_bytes(b"new")
            assert not target.exists()  # nothing visible before the end
    finally:
        os.umask(previous)
    assert (target / "weights.bin").read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o755 and (target / "weights.bin").stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError, match="export failed"):
        with atomic_folder(target) as staging:
            (staging / "weights.bin").write_bytes(b"half")
            raise RuntimeError("export failed")
    assert (target / "weights.bin").read_bytes() == b"new"  # the previous folder is kept
    assert sorted(path.name for path in tmp_path.iterdir()) == ["exported"]  # and no staging folder is left
