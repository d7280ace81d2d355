"""The one runner of `animate --jobs` and `evaluate --tiktok`: plan (resume), run, failed rows, --debug."""

import contextlib
from dataclasses import dataclass

import pytest

from magicpose.errors import InputError
from magicpose.workflows.runner import Processes, Work, run_shared, shard


@dataclass
class Row:
    name: str
    status: str
    seconds: float = 0.0
    message: str = ""
    process: int = 0


def _work(done: set, outcomes: dict, started: list) -> Work:
    @contextlib.contextmanager
    def start(mine):
        started.append([item for item in mine])

        def run_one(item):
            if isinstance(outcomes.get(item), Exception):
                raise outcomes[item]
            return Row(item, "done")

        yield run_one

    return Work(
        command="test",
        unit="item",
        row_type=Row,
        label=lambda item: f"item {item}",
        done=lambda item: item in done,
        skipped=lambda item: Row(item, "skipped"),
        failed=lambda item, message: Row(item, "failed", message=message),
        order=lambda row: "abcde".index(row.name),
        start=start,
    )


def test_done_items_are_skipped_and_a_failing_one_does_not_stop_the_others(tmp_path, capsys):
    started = []
    outcomes = {"b": InputError("b.png does not exist"), "d": KeyError("pose")}
    rows = run_shared(_work({"c"}, outcomes, started), list("abcde"), tmp_path / "report.json", Processes())
    assert [(row.name, row.status) for row in rows] == [
        ("a", "done"),
        ("b", "failed"),
        ("c", "skipped"),
        ("d", "failed"),
        ("e", "done"),
    ]
    assert started == [list("abde")]  # one start (one model load) for the pending items only
    assert rows[1].message == "b.png does not exist" and rows[3].message == "KeyError: 'pose'"
    assert "magicpose test: item d failed: KeyError: 'pose'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # one process: no part files


def test_nothing_pending_starts_nothing(tmp_path):
    started = []
    rows = run_shared(_work(set("ab"), {}, started), list("ab"), tmp_path / "report.json", Processes())
    assert started == [] and [row.status for row in rows] == ["skipped", "skipped"]


def test_under_debug_a_bug_raises_and_an_anticipated_failure_stays_a_row(tmp_path):
    outcomes = {"a": InputError("bad input"), "b": KeyError("pose")}
    with pytest.raises(KeyError, match="pose"):
        run_shared(_work(set(), outcomes, []), list("ab"), tmp_path / "report.json", Processes(), debug=True)
    rows = run_shared(_work(set(), {"a": outcomes["a"]}, []), list("ab"), tmp_path / "r.json", Processes(), debug=True)
    assert [row.status for row in rows] == ["failed", "done"]


def test_shards_cover_every_item_once():
    items = list(range(7))
    shards = [shard(items, index, 3) for index in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
