"""The two ways of writing atomically: a file (`atomic_path`) and a folder (`atomic_folder`)."""

import pytest

from magicpose.errors import InputError
from magicpose.files import atomic_folder, atomic_path


def test_a_file_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".txt"
        temporary.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_folder_replaces_the_old_one_whole_and_a_failure_keeps_the_old_one(tmp_path):
    target = tmp_path / "model"
    with atomic_folder(target) as folder:
        (folder / "a.json").write_text("1")
    with pytest.raises(InputError, match="already exists"), atomic_folder(target):
        pass
    with pytest.raises(KeyboardInterrupt), atomic_folder(target, overwrite=True) as folder:
        (folder / "b.json").write_text("2")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["a.json"]
    with atomic_folder(target, overwrite=True) as folder:
        (folder / "b.json").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing left beside it


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    from pathlib import Path

    target = tmp_path / "model"
    target.mkdir()
    (target / "a.json").write_text("1")
    rename = Path.rename

    def failing_rename(self, destination):
        if Path(destination) == target:
            raise OSError("disk gone")
        return rename(self, destination)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="disk gone"), atomic_folder(target, overwrite=True) as folder:
        (folder / "b.json").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["a.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_only_dead_writers_temporaries_are_removed(tmp_path):
    import os
    import subprocess
    import sys

    from magicpose.files import remove_stale_temporaries

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, live = int(ended.stdout), os.getppid()
    names = {
        f".out.mp4.{dead}.abcd_123.mp4": "removed",  # a killed run's
        f".out.mp4.{live}.abcd_123.mp4": "kept",  # a run still writing
        ".out.mp4.k3j4h5g6.mp4": "kept",  # an older version's, fresh: maybe still being written
        ".out.mp4.zz9y8x7w.mp4": "removed",  # an older version's, unchanged for an hour
        ".out.mp4.notes": "kept",  # the user's own
        ".out.mp4.old.abcdefgh": "kept",  # a folder set aside mid-swap: the old output itself
    }
    for name in names:
        (tmp_path / name).write_text("x")
    os.utime(tmp_path / ".out.mp4.zz9y8x7w.mp4", (0, 0))
    removed = remove_stale_temporaries(tmp_path / "out.mp4")
    assert sorted(p.name for p in removed) == sorted(n for n, fate in names.items() if fate == "removed")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, fate in names.items() if fate == "kept")


def test_check_output_names_the_problem(tmp_path, monkeypatch):
    from magicpose.files import check_output

    monkeypatch.setenv("HOME", str(tmp_path))
    assert check_output("~/a.mp4", "--out", (".mp4",)) == tmp_path / "a.mp4"
    (tmp_path / "input.mp4").write_bytes(b"")
    (tmp_path / "link.mp4").symlink_to("input.mp4")
    with pytest.raises(InputError, match=r"link.mp4 \(a link to .*input.mp4\) would overwrite"):
        check_output(tmp_path / "link.mp4", "--out", (".mp4",), inputs=(tmp_path / "input.mp4",))
    (tmp_path / "d.mp4").mkdir()
    (tmp_path / "to_folder.mp4").symlink_to("d.mp4")
    with pytest.raises(InputError, match="is a folder"):
        check_output(tmp_path / "to_folder.mp4", "--out", (".mp4",))
