"""`magicpose app` in a real browser: headless Debian Chromium driven by Playwright.

Starts the command on a free local port with the tiny random model, presses 'Use the puppet example',
waits for the skeleton previews, generates, and checks that the page's <video> plays an H.264 mp4
(the browser reads its duration; PyAV decodes the same bytes). Set MAGICPOSE_APP_SCREENSHOT=path to
keep a screenshot of the page after generating (docs/app.png is made this way).
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import av
import pytest

from magicpose.pipelines.pipeline_magicpose import MagicPosePipeline
from tests.dummy_components import get_dummy_components

CHROMIUM = Path("/usr/bin/chromium")
# Headless, offline and quiet: no GPU, no sandbox (containers), no sync/update/metrics traffic.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="no browser: /usr/bin/chromium is absent (apt-get install chromium; .ci/run does)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"magicpose app exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"magicpose app did not answer on {url} within {timeout} s")


@pytest.fixture
def server(tmp_path):
    MagicPosePipeline(**get_dummy_components()).save_pretrained(tmp_path / "model")
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "magicpose.interfaces.cli",
        "app",
        "--model",
        str(tmp_path / "model"),
        "--port",
        str(port),
        "--steps",
        "1",
        "--max-frames",
        "8",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", no_proxy="127.0.0.1,localhost")
    log = tmp_path / "app.log"  # a file, not a pipe: a full pipe would stall the server
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_server(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_puppet_example_generates_a_playable_video_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.goto(server)
            page.click("#example")
            page.wait_for_selector("#alignment img", timeout=30_000)
            assert "aligned" in page.inner_text("#preview-note")
            page.click("#generate")
            video = page.wait_for_selector("#result video[src]", timeout=30_000)
            duration = page.evaluate(
                """video => new Promise(resolve => {
                    if (video.readyState >= 1) resolve(video.duration);
                    video.addEventListener('loadedmetadata', () => resolve(video.duration));
                    video.addEventListener('error', () => resolve(-1));
                })""",
                video,
            )
            assert duration > 0, "Chromium could not read the result video"
            body = page.request.get(urljoin(server, video.get_attribute("src"))).body()
            assert "frames" in page.inner_text("#result-note")
            if os.environ.get("MAGICPOSE_APP_SCREENSHOT"):
                page.screenshot(path=os.environ["MAGICPOSE_APP_SCREENSHOT"], full_page=True)
        finally:
            browser.close()
    (tmp_path / "result.mp4").write_bytes(body)
    with av.open(str(tmp_path / "result.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert len(list(container.decode(stream))) == 8  # the 8-frame example (--max-frames 8)
