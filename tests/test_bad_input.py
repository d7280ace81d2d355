"""Bad input, tried as a new user would: every command that takes user files, with each class of damage.

Each case must end in exit code 2 with one message that names the file or option (no traceback), and leave
every file that existed before byte-identical, with nothing new beside them (no partial output).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import pytest

from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.interfaces.cli import main
from magicpose.media import write_image, write_video
from magicpose.models.default import default_model_folder
from magicpose.poses.openpose_json import save_poses


def write_faststart_video(path: Path, frames: list[np.ndarray]) -> None:
    """An mp4 with its index first (as phones and web tools write them): cut short, it still opens."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def write_pose_files(root: Path) -> None:
    """Pose files as other tools and damaged writers leave them."""
    good = json.loads((root / "poses.json").read_text())

    def variant(name: str, change) -> None:
        data = json.loads(json.dumps(good))
        change(data)
        (root / name).write_text(json.dumps(data))

    variant("null_frame.json", lambda data: data["frames"].__setitem__(1, None))
    variant("fps_nan.json", lambda data: data.update(fps=float("nan")))
    variant("fps_tiny.json", lambda data: data.update(fps=1e-9))
    variant("huge.json", lambda data: data["frames"][0]["people"][0]["pose_keypoints_2d"].__setitem__(3, 1e30))
    variant("far.json", lambda data: data["frames"][3]["people"][0]["pose_keypoints_2d"].__setitem__(3, 5000.0))
    person = dict(good["frames"][0]["people"][0])
    person["pose_keypoints_2d"] = person["pose_keypoints_2d"][:4] + [None] + person["pose_keypoints_2d"][5:]
    (root / "openpose_null").mkdir()
    (root / "openpose_null" / "f_000_keypoints.json").write_text(json.dumps({"people": [person]}))


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> Path:
    """Good and damaged user files, made once and copied into each case's own folder."""
    root = tmp_path_factory.mktemp("inputs")
    puppet = PuppetVideo(video_spec("test", 0, num_frames=6, width=64, height=64))
    frames = [puppet.frame(i).image for i in range(6)]
    write_image(root / "photo.png", frames[0])
    write_video(root / "dance.mp4", frames, fps=15.0)
    save_poses(puppet.poses(), root / "poses.json")
    data = (root / "dance.mp4").read_bytes()
    long_puppet = PuppetVideo(video_spec("test", 0, num_frames=30, width=64, height=64))
    write_faststart_video(root / "whole.mp4", [long_puppet.frame(i).image for i in range(30)])
    whole = (root / "whole.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(whole[: int(len(whole) * 0.6)])  # the header still promises 30 frames
    (root / "empty.mp4").write_bytes(b"")
    (root / "empty.png").write_bytes(b"")
    (root / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "garbage.png").write_bytes(np.random.default_rng(1).bytes(5000))
    (root / "text.png").write_text("not an image\n")
    (root / "broken.json").write_text('{"frames": [')
    (root / "wrong.json").write_text(json.dumps({"hello": 1}))
    (root / "folder").mkdir()
    write_image(root / "gen" / "v" / "0001.png", frames[0])
    (root / "existing.mp4").write_bytes(data)  # a user's earlier result
    (root / "config.yaml").write_text("stage: nonsense\n")
    (root / "bad.yaml").write_text("stage: [unclosed\n")
    (root / "jobs.yaml").write_text("- {reference: photo.png}\n")
    write_pose_files(root)
    (root / "link_to_dance.mp4").symlink_to("dance.mp4")  # relative, so the case's copy links to its own
    (root / "dir.json").mkdir()
    (root / "dir.mp4").mkdir()
    (root / "jobs_ok.yaml").write_text("- {reference: photo.png, driving: poses.json, out: r.mp4}\n")
    (root / "jobs_self.yaml").write_text("- {reference: photo.png, driving: poses.json, out: jobs_self.yaml}\n")
    (root / "jobs_folder.yaml").write_text("- {reference: photo.png, driving: poses.json, out: dir.mp4}\n")
    (root / "official.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")  # empty safetensors header
    (root / "official_truncated.safetensors").write_bytes(b"\xff\xff\x00\x00\x00\x00\x00\x00{")
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Damaged copies of the embedded model (shared by the cases, and checked unchanged after each)."""
    root = tmp_path_factory.mktemp("models")
    model = root / "model"
    shutil.copytree(default_model_folder(), model)
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a partial download
    bad_index = root / "model_index"
    shutil.copytree(default_model_folder(), bad_index)
    (bad_index / "model_index.json").write_text("{not json")
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(root.rglob("*"))
    }


# (case id, argv with {d} for the case's folder, words the message must contain)
ANIMATE = ["animate", "--no-align", "--steps", "1", "--size", "64"]


def animate(*options: str, reference: str = "photo.png", driving: str = "poses.json", out: str = "o.mp4") -> list[str]:
    """`animate` at a tiny size with the case's options; files are in the case's folder unless absolute."""
    return animate_without_defaults(*ANIMATE[1:], *options, reference=reference, driving=driving, out=out)


def animate_without_defaults(*options: str, reference="photo.png", driving="poses.json", out="o.mp4") -> list[str]:
    where = {
        name: value if value.startswith("/") or "://" in value else "{d}/" + value
        for name, value in (("reference", reference), ("driving", driving), ("out", out))
    }
    return ["animate", *options, *(item for name, value in where.items() for item in (f"--{name}", value))]


CASES = [
    # animate: the reference photo
    ("animate-reference-missing", animate(reference="nope.png"), "nope.png"),
    ("animate-reference-folder", animate(reference="folder"), "folder"),
    ("animate-reference-empty", animate(reference="empty.png"), "empty.png"),
    ("animate-reference-garbage", animate(reference="garbage.png"), "garbage.png"),
    ("animate-reference-text", animate(reference="text.png"), "text.png"),
    ("animate-reference-video", animate(reference="dance.mp4"), "dance.mp4"),
    # animate: the driving input
    ("animate-driving-missing", animate(driving="nope.mp4"), "nope.mp4"),
    ("animate-driving-empty", animate(driving="empty.mp4"), "empty.mp4"),
    ("animate-driving-garbage", animate(driving="garbage.mp4"), "garbage.mp4"),
    ("animate-driving-truncated", animate("--strict", driving="truncated.mp4"), "truncated.mp4"),
    ("animate-driving-broken-json", animate(driving="broken.json"), "broken.json"),
    ("animate-driving-wrong-json", animate(driving="wrong.json"), "wrong.json"),
    ("animate-driving-empty-folder", animate(driving="folder"), "folder"),
    # animate: pose files as other tools and damaged writers leave them
    ("animate-driving-null-frame", animate(driving="null_frame.json"), "null_frame.json frame 1"),
    ("animate-driving-fps-nan", animate(driving="fps_nan.json"), "fps_nan.json: 'fps'"),
    ("animate-driving-fps-tiny", animate(driving="fps_tiny.json"), "fps_tiny.json: 'fps'"),
    ("animate-driving-keypoint-huge", animate(driving="huge.json"), "huge.json frame 0 people[0] pose_keypoints_2d"),
    (
        "animate-driving-keypoint-huge-aligned",
        animate_without_defaults("--steps", "1", "--size", "64", driving="huge.json"),
        "huge.json frame 0 people[0] pose_keypoints_2d",
    ),
    (
        "animate-driving-keypoint-far-aligned",
        animate_without_defaults("--steps", "1", "--size", "64", driving="far.json"),
        "far.json frame 3 body",
    ),
    ("animate-reference-url", animate(reference="https://example.com/photo.png"), "URLs are not read"),
    ("animate-driving-url", animate(driving="https://example.com/dance.mp4"), "URLs are not read"),
    # animate: the output
    ("animate-out-links-to-input", animate(driving="dance.mp4", out="link_to_dance.mp4"), "dance.mp4"),
    ("animate-report-is-input", ["animate", "--jobs", "{d}/jobs_ok.yaml", "--report", "{d}/poses.json"], "poses.json"),
    ("animate-report-is-folder", ["animate", "--jobs", "{d}/jobs_ok.yaml", "--report", "{d}/dir.json"], "dir.json"),
    ("animate-job-out-is-jobs-file", ["animate", "--jobs", "{d}/jobs_self.yaml"], "jobs_self.yaml"),
    ("animate-job-out-is-folder", ["animate", "--jobs", "{d}/jobs_folder.yaml"], "dir.mp4 is a folder"),
    ("animate-out-is-driving", animate(driving="dance.mp4", out="dance.mp4"), "dance.mp4"),
    ("animate-grid-is-input", animate("--grid", driving="o_grid.mp4"), "o_grid.mp4"),
    ("animate-out-folder", animate(out="folder"), "folder"),
    ("animate-out-wrong-type", animate(out="o.avi"), ".mp4"),
    ("animate-out-unwritable", animate(out="/proc/o.mp4"), "/proc"),
    ("animate-out-parent-is-file", animate(out="photo.png/o.mp4"), "photo.png"),
    # animate: numbers
    ("animate-fps-zero", animate("--fps", "0"), "--fps"),
    ("animate-fps-nan", animate("--fps", "nan"), "--fps"),
    ("animate-max-frames-zero", animate("--max-frames", "0"), "--max-frames"),
    ("animate-max-frames-negative", animate("--max-frames", "-1"), "--max-frames"),
    ("animate-seed-too-large", animate("--seed", "1180591620717411303424"), "--seed"),
    ("animate-size-too-large", animate_without_defaults("--steps", "1", "--size", "100000"), "--size"),
    ("animate-steps-zero", animate_without_defaults("--steps", "0"), "--steps"),
    ("animate-guidance-huge", animate("--guidance", "1e9"), "--guidance"),
    # animate: damaged weights
    ("animate-truncated-weights", animate("--model", "{m}/model"), "diffusion_pytorch_model.safetensors"),
    ("animate-malformed-model-index", animate("--model", "{m}/model_index"), "model_index.json"),
    ("animate-model-missing", animate("--model", "{d}/nope"), "nope"),
    ("animate-jobs-malformed", ["animate", "--jobs", "{d}/jobs.yaml"], "jobs.yaml"),
    # pose
    ("pose-extract-missing", ["pose", "extract", "{d}/nope.mp4", "-o", "{d}/p.json"], "nope.mp4"),
    ("pose-extract-garbage", ["pose", "extract", "{d}/garbage.mp4", "-o", "{d}/p.json"], "garbage.mp4"),
    ("pose-extract-empty", ["pose", "extract", "{d}/empty.mp4", "-o", "{d}/p.json"], "empty.mp4"),
    ("pose-extract-out-is-input", ["pose", "extract", "{d}/dance.mp4", "-o", "{d}/dance.mp4"], "dance.mp4"),
    ("pose-extract-out-wrong-type", ["pose", "extract", "{d}/dance.mp4", "-o", "{d}/p.txt"], ".json"),
    ("pose-render-broken", ["pose", "render", "{d}/broken.json", "-o", "{d}/r.mp4"], "broken.json"),
    ("pose-render-wrong", ["pose", "render", "{d}/wrong.json", "-o", "{d}/r.mp4"], "wrong.json"),
    ("pose-render-out-is-input", ["pose", "render", "{d}/poses.json", "-o", "{d}/poses.json"], "poses.json"),
    (
        "pose-render-openpose-null-value",
        ["pose", "render", "{d}/openpose_null", "--size", "64x64", "-o", "{d}/r.mp4"],
        "f_000_keypoints.json people[0] pose_keypoints_2d: value 4 is null",
    ),
    ("pose-render-out-existing-folder", ["pose", "render", "{d}/poses.json", "-o", "{d}/folder"], "folder"),
    (
        "pose-align-reference-garbage",
        ["pose", "align", "{d}/poses.json", "--reference", "{d}/garbage.png", "-o", "{d}/a.json"],
        "garbage.png",
    ),
    (
        "pose-align-out-is-input",
        ["pose", "align", "{d}/poses.json", "--reference", "{d}/photo.png", "-o", "{d}/poses.json"],
        "poses.json",
    ),
    # convert
    ("convert-missing", ["convert", "{d}/nope.th", "{d}/converted"], "nope.th"),
    ("convert-empty-header", ["convert", "{d}/official.safetensors", "{d}/converted"], "official.safetensors"),
    (
        "convert-truncated",
        ["convert", "{d}/official_truncated.safetensors", "{d}/converted"],
        "official_truncated.safetensors",
    ),
    ("convert-garbage", ["convert", "{d}/garbage.mp4", "{d}/converted"], "garbage.mp4"),
    ("convert-out-is-file", ["convert", "{d}/official.safetensors", "{d}/existing.mp4"], "existing.mp4"),
    # train
    ("train-missing", ["train", "{d}/nope.yaml"], "nope.yaml"),
    ("train-bad-yaml", ["train", "{d}/bad.yaml"], "bad.yaml"),
    ("train-bad-stage", ["train", "{d}/config.yaml"], "stage"),
    ("train-bad-override", ["train", "configs/puppet/stage1_appearance.yaml", "train.batch_size=-3"], "batch_size"),
    # data
    ("data-videos-missing", ["data", "prepare", "videos", "{d}/nope", "{d}/dataset"], "nope"),
    ("data-videos-out-is-file", ["data", "prepare", "videos", "{d}/dance.mp4", "{d}/existing.mp4"], "existing.mp4"),
    # evaluate
    ("evaluate-missing", ["evaluate", "--generated", "{d}/nope", "--ground-truth", "{d}/folder"], "nope"),
    (
        "evaluate-json-is-folder",
        ["evaluate", "--generated", "{d}/gen", "--ground-truth", "{d}/gen", "--json", "{d}/folder"],
        "folder",
    ),
    # demo
    ("demo-identity-negative", ["demo", "--identity", "-1", "--out", "{d}/demo.mp4"], "--identity"),
    ("demo-out-wrong-type", ["demo", "--out", "{d}/demo.avi"], ".mp4"),
    ("demo-frames-zero", ["demo", "--frames", "0", "--out", "{d}/demo.mp4"], "--frames"),
]


@pytest.mark.parametrize(("argv", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_refused_cleanly(originals, models, tmp_path, capsys, argv, words):
    work = tmp_path / "case"
    shutil.copytree(originals, work, symlinks=True)
    before = snapshot(work), snapshot(models)
    argv = [part.replace("{d}", str(work)).replace("{m}", str(models)) for part in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals exit 2 with a usage line
        code = exit_.code
    captured = capsys.readouterr()
    message = captured.err.replace(str(work) + "/", "").replace(str(models) + "/", "")
    assert code == 2, f"exit {code}: {captured.err[-1500:]}"
    assert "Traceback" not in captured.err + captured.out
    assert words in message, f"the message should name {words!r}: {captured.err[-800:]}"
    assert (snapshot(work), snapshot(models)) == before, "a file was changed, removed or left behind"


def test_a_truncated_video_is_reported_not_silently_shortened(originals, tmp_path, capsys):
    out = tmp_path / "poses.json"
    assert main(["pose", "extract", str(originals / "truncated.mp4"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "magicpose pose: warning:" in err and "only 11 of the 30 frames" in err and "Traceback" not in err
    assert out.is_file()
    assert main(["pose", "extract", "--strict", str(originals / "truncated.mp4"), "-o", str(tmp_path / "s.json")]) == 2
    assert "stopped by --strict" in capsys.readouterr().err and not (tmp_path / "s.json").exists()


# Files as people keep them: links, write-protected files, `~`, a killed run's leftovers.


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_an_output_through_a_symlink_is_written_to_its_target_and_the_link_kept(originals, tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "old.mp4").write_bytes(b"the user's old result")
    (tmp_path / "link.mp4").symlink_to("videos/old.mp4")
    (tmp_path / "dangling.mp4").symlink_to("videos/new.mp4")
    for name in ("link.mp4", "dangling.mp4"):
        assert main(["pose", "render", str(originals / "poses.json"), "-o", str(tmp_path / name)]) == 0
    assert (tmp_path / "link.mp4").is_symlink() and (tmp_path / "dangling.mp4").is_symlink()
    assert frame_count(tmp_path / "videos" / "old.mp4") == 6 and frame_count(tmp_path / "videos" / "new.mp4") == 6
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["new.mp4", "old.mp4"]  # made beside the target
    assert "Traceback" not in capsys.readouterr().err


def test_a_tilde_in_an_output_is_the_home_folder(originals, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["pose", "render", str(originals / "poses.json"), "-o", "~/skeleton.mp4"]) == 0
    assert frame_count(tmp_path / "home" / "skeleton.mp4") == 6 and not (tmp_path / "~").exists()


def test_the_next_run_removes_what_a_killed_run_left(originals, tmp_path):
    out = tmp_path / "skeleton.mp4"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\nfrom magicpose.files import atomic_path\n"
            "with atomic_path(sys.argv[1]) as temporary:\n"
            "    temporary.write_bytes(b'half a video')\n    os.kill(os.getpid(), 9)\n",
            str(out),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    assert killed.returncode == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".skeleton.mp4.")
    (tmp_path / ".skeleton.mp4.notes").write_text("the user's own hidden file")
    assert main(["pose", "render", str(originals / "poses.json"), "-o", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".skeleton.mp4.notes", "skeleton.mp4"]


def run_as_nobody(argv: list[str]) -> tuple[int, str]:
    """`main(argv)` in a child process that has given up root (fork, then setuid 65534: the interpreter and
    the modules already imported stay usable even where nobody may read them); (exit code, stderr)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.close(read)
            os.dup2(write, 2)
            sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            code = main(argv)
        except BaseException as error:  # noqa: BLE001 (reported to the parent through the exit code)
            print(f"child failed: {error!r}", file=sys.stderr)
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as stream:
        err = stream.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


def test_a_write_protected_output_is_refused_for_a_user_who_may_not_write_it(originals, tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user (as the suite runs in CI)")
    folder = Path(tempfile.mkdtemp(prefix="magicpose-nobody-"))  # pytest's own folders are root's alone
    try:
        os.chmod(folder, 0o777)
        poses, out = folder / "poses.json", folder / "out.mp4"
        shutil.copy(originals / "poses.json", poses)
        out.write_bytes(b"the user's result, kept")
        for path in (folder, poses, out):
            os.chown(path, 65534, 65534)
        argv = ["pose", "render", str(poses), "-o", str(out)]
        assert main(argv[:-1] + [str(folder / "warm.mp4")]) == 0  # imports what the child will need
        out.chmod(0o444)
        code, err = run_as_nobody(argv)
        assert code == 2 and "write-protected" in err and "out.mp4" in err, err
        assert out.read_bytes() == b"the user's result, kept"
        out.chmod(0o644)
        code, err = run_as_nobody(argv)
        assert code == 0, err
        assert frame_count(out) == 6
    finally:
        shutil.rmtree(folder)


@pytest.mark.slow
def test_the_detector_native_logs_are_silent_unless_debugging(originals, tmp_path):
    """mediapipe's TFLite/absl lines came before the one line that matters; --debug shows them."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    env.pop("MAGICPOSE_DEBUG", None)

    def extract(*debug: str) -> subprocess.CompletedProcess:
        out = tmp_path / f"poses{len(debug)}.json"
        command = [sys.executable, "-m", "magicpose.interfaces.cli", *debug, "pose", "extract"]
        return subprocess.run(
            command + [str(originals / "dance.mp4"), "-o", str(out)], env=env, capture_output=True, text=True
        )

    quiet, loud = extract(), extract("--debug")
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    native = ("TensorFlow Lite", "W0000", "absl::InitializeLog")
    assert not any(word in quiet.stderr for word in native), quiet.stderr
    assert any(word in loud.stderr for word in native), loud.stderr  # the silencing is what hid them
    assert "poses:" in quiet.stderr  # the progress bar still shows
    assert quiet.stdout.startswith(str(tmp_path / "poses0.json") + ": 6 frames")
