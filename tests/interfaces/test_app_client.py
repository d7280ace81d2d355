"""`magicpose app` as API clients use it: the official `gradio_client` against the real command.

One server for the module (the embedded model, 4-frame driving videos, one step): its endpoints, one
generation, a bad photo, bad numbers, the bounded results cache, and SIGTERM (last: it stops the server).
The port checks run the command in-process: they must end before anything slow is imported.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from gradio_client import Client, handle_file

from magicpose.interfaces import app
from magicpose.interfaces.cli import main
from magicpose.media import read_video
from tests.interfaces.test_app_browser import free_port, wait_for_server

MAX_FRAMES = 4
# /generate's arguments after the two files: width, height, steps, guidance, seed, then the settings
SETTINGS = [True, "person", "person", 1.0, 0, 0, -1, "largest", "off", "driving"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cache")
    stale = folder / "jobs" / "old-result"  # a result from two days ago: the start-up removes it
    stale.mkdir(parents=True)
    (stale / "result.mp4").write_bytes(b"old")
    (stale / "grid.mp4").write_bytes(b"old")
    os.utime(stale, (time.time() - 48 * 3600,) * 2)
    return folder


@pytest.fixture(scope="module")
def server(cache, tmp_path_factory):
    port = free_port()
    command = [sys.executable, "-m", "magicpose.interfaces.cli", "app", "--port", str(port), "--steps", "1"]
    command += ["--max-frames", str(MAX_FRAMES), "--cache-dir", str(cache), "--keep-results", "1"]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", no_proxy="127.0.0.1,localhost")
    log = tmp_path_factory.mktemp("log") / "app.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_server(url, process, log, timeout=180)
        yield process, url, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def client(server):
    return Client(server[1], verbose=False, download_files=str(server[2].parent / "downloads"))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return [handle_file(str(path)) for path in app.puppet_examples(tmp_path_factory.mktemp("examples"), MAX_FRAMES)]


def error_of(client, *args, api_name="/generate") -> str:
    with pytest.raises(Exception) as caught:
        client.predict(*args, api_name=api_name)
    message = str(caught.value)
    # what a client sees: the CLI's words, never Gradio's internal text nor where the server keeps uploads
    assert "Could not preprocess" not in message and "/tmp" not in message and "gradio" not in message, message
    return message


@pytest.mark.slow
def test_one_endpoint_per_action(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert sorted(api["named_endpoints"]) == ["/example", "/generate", "/preview"]
    assert not api["unnamed_endpoints"]
    generate = api["named_endpoints"]["/generate"]
    names = [parameter["parameter_name"] for parameter in generate["parameters"]]
    assert names == [
        "reference_path",
        "driving_path",
        "width",
        "height",
        "steps",
        "guidance",
        "seed",
        "align",
        "fit",
    ] + ["driving_fit", "scale", "dx", "dy", "frame", "person", "smooth", "audio"]
    assert [output["label"] for output in generate["returns"]] == [
        "result",
        "reference | skeleton | result",
        "download",
        "summary",
    ]
    assert [p["parameter_name"] for p in api["named_endpoints"]["/preview"]["parameters"]] == names[:4] + names[7:-1]


@pytest.mark.slow
def test_a_client_generates_and_the_results_cache_stays_bounded(client, examples, cache):
    video, grid, files, note = client.predict(*examples, 32, 48, 1, 3.0, 7, *SETTINGS, api_name="/generate")
    frames, fps = read_video(video)
    assert len(frames) == MAX_FRAMES and frames[0].shape == (48, 32, 3) and fps == pytest.approx(15)
    assert read_video(grid)[0][0].shape == (48, 96, 3) and len(files) == 2
    assert note.startswith(f"{MAX_FRAMES} frames at 15 fps, 32x48, aligned") and "embedded puppet model" in note
    jobs = list((cache / "jobs").iterdir())
    assert len(jobs) == 1 and (jobs[0] / "result.mp4").is_file()  # the two-day-old result went at start-up
    # by name, the rest at the page's defaults (height 0: a square)
    video, *_ = client.predict(
        reference_path=examples[0], driving_path=examples[1], width=32, steps=1, smooth="off", api_name="/generate"
    )
    assert read_video(video)[0][0].shape == (32, 32, 3)
    newest = list((cache / "jobs").iterdir())
    assert len(newest) == 1 and newest != jobs  # --keep-results 1: the older one went before the new one


@pytest.mark.slow
def test_a_bad_photo_or_video_gets_the_clis_message(client, examples, tmp_path):
    photo = tmp_path / "IMG_0001.heic"  # an iPhone photo's header; Pillow cannot read HEIC
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    message = error_of(client, handle_file(str(photo)), examples[1], 32, 32, 1, 3.0, 7, *SETTINGS)
    assert "cannot read IMG_0001.heic as an image" in message and "pass a PNG, JPEG" in message
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    message = error_of(client, handle_file(str(text)), examples[1], 0, 0, *SETTINGS[:-1], api_name="/preview")
    assert "cannot read notes.png as an image" in message
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(200))  # a header, then nothing
    message = error_of(client, examples[0], handle_file(str(clip)), 32, 32, 1, 3.0, 7, *SETTINGS)
    assert "cannot read clip.mp4 as a video" in message and "pass an mp4" in message


@pytest.mark.slow
def test_bad_numbers_get_the_clis_messages(client, examples):
    cases = [
        ((32, 32, 1, 3.0, 10**20), "a seed is from 0 to 2**63 - 1, got 100000000000000000000"),
        ((32, 32, 1, 3.0, -1), "a seed is from 0 to 2**63 - 1, got -1"),
        ((32, 32, 0, 3.0, 7), "steps must be from 1 to 1000, got 0"),
        ((32, 32, 2.5, 3.0, 7), "steps must be a whole number, got 2.5"),
        ((32, 32, 1, 99.0, 7), "guidance must be from 0 to 30"),
        ((32, 32, 1, "lots", 7), "guidance must be a number, got 'lots'"),
        ((30, 32, 1, 3.0, 7), "width must be a multiple of 8 from 8 to 2048, got 30"),
    ]
    for numbers, expected in cases:
        assert expected in error_of(client, *examples, *numbers, *SETTINGS)
    bad_fit = [True, "stretch", *SETTINGS[2:]]
    assert "fit must be one of pad, crop, person, got 'stretch'" in error_of(
        client, *examples, 32, 32, 1, 3, 7, *bad_fit
    )


def test_port_problems_stop_before_the_start_up_with_one_line(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = (
            "import sys\nfrom magicpose.interfaces.cli import main\n"
            f"code = main(['app', '--port', '{port}'])\n"
            "print(code, [name for name in ('torch', 'gradio') if name in sys.modules])"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout == "2 []\n"  # refused before the model, torch and Gradio are loaded
    assert result.stderr == f"magicpose app: error: port {port} is in use (another server?); pass a free --port\n"
    for port in ("0", "70000"):
        assert main(["app", "--port", port]) == 2
        assert capsys.readouterr().err == f"magicpose app: error: --port must be from 1 to 65535, got {port}\n"
    assert main(["app", "--host", "no-such-host.invalid", "--port", str(free_port())]) == 2
    assert "--host no-such-host.invalid is not a known address" in capsys.readouterr().err


def test_a_cache_dir_that_is_a_file_stops_before_the_start_up(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["app", "--port", str(free_port()), "--cache-dir", str(tmp_path / "notes.txt")]) == 2
    error = capsys.readouterr().err
    assert error == f"magicpose app: error: --cache-dir {tmp_path / 'notes.txt'} is a file; give a folder\n"
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_old_and_surplus_results_are_removed(tmp_path):
    jobs = tmp_path / "jobs"
    now = time.time()
    for name, age_hours in (("a", 0), ("b", 1), ("c", 2), ("d", 30), ("unfinished", 0)):
        (jobs / name).mkdir(parents=True)
        if name != "unfinished":
            (jobs / name / "grid.mp4").write_bytes(b"")  # written last: a whole result
        os.utime(jobs / name, (now - age_hours * 3600,) * 2)
    assert app.prune_results(tmp_path, keep=5, max_hours=24) == 2  # d: older than a day; the unfinished one
    assert app.prune_results(tmp_path, keep=2, max_hours=24) == 1  # c: the third newest
    assert sorted(path.name for path in jobs.iterdir()) == ["a", "b"]
    assert app.prune_results(tmp_path / "empty", keep=1, max_hours=1) == 0


@pytest.mark.slow
def test_sigterm_stops_the_server_with_143_even_during_a_generation(server, client, examples, cache):
    from gradio_client.utils import Status

    process, url, log = server
    job = client.submit(*examples, 32, 32, 1000, 3.0, 7, *SETTINGS, api_name="/generate")  # minutes of work
    deadline = time.monotonic() + 60
    while job.status().code not in (Status.PROCESSING, Status.PROGRESS) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.status().code in (Status.PROCESSING, Status.PROGRESS)
    process.send_signal(signal.SIGTERM)
    # not after the job (the interpreter waited for its thread, then aborted in native teardown: SIGABRT)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert "magicpose app: interrupted; the server is stopped" in log.read_text()
    assert not list((cache / "jobs").glob("*/.*"))  # no temporary of the dropped job is left
