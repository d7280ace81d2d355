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
