"""`python -m geneface.app`: the page served on a free local port against the tiny trained speaker,
driven by gradio_client as a user's browser drives it (audio in → an mp4 with that audio out; bad
audio → the readable error), and opened in a real headless Chromium where one is installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from pipeline_utils import REPO, env_for

from geneface.media.audio import write_wav
from geneface.media.video import probe_video

gradio_client = pytest.importorskip("gradio_client")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tiny_pipeline):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "geneface.app", f"port={port}", "runtime.threads=1"], cwd=REPO,
                              env=env_for(tiny_pipeline), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the app exited: {server.stdout.read()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("the app did not answer within 120 s")
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.slow
def test_audio_in_gives_an_mp4_of_that_audio_out(app_url, tmp_path):
    seconds = 1.2
    t = np.arange(int(seconds * 16000)) / 16000
    write_wav(tmp_path / "speech.wav", 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2)
    client = gradio_client.Client(app_url, verbose=False)
    result = client.predict("demo", gradio_client.handle_file(str(tmp_path / "speech.wav")), "radnerf",
                            "auto", 0, "cpu", api_name="/speak")      # the head in the speaker's own frames
    video = result["video"] if isinstance(result, dict) else result
    info = probe_video(video)
    assert info.has_audio and abs(info.duration_s - seconds) < 0.1 and info.width == 64


@pytest.mark.slow
def test_bad_or_no_audio_gives_a_readable_error(app_url, tmp_path):
    (tmp_path / "notes.wav").write_text("these are my notes, not audio")
    client = gradio_client.Client(app_url, verbose=False)
    with pytest.raises(gradio_client.exceptions.AppError, match="ffmpeg cannot decode its audio") as bad:
        client.predict("demo", gradio_client.handle_file(str(tmp_path / "notes.wav")), "radnerf", "auto",
                       0, "cpu", api_name="/speak")
    assert "Traceback" not in str(bad.value)
    with pytest.raises(gradio_client.exceptions.AppError, match="give some audio"):
        client.predict("demo", None, "radnerf", "auto", 0, "cpu", api_name="/speak")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt install chromium; .ci/run installs it)")
def test_the_page_renders_in_a_real_browser(app_url, tmp_path):
    import cv2

    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900", "--virtual-time-budget=15000"]
    shot = tmp_path / "app.png"
    subprocess.run([*flags, f"--screenshot={shot}", app_url], capture_output=True, timeout=120, check=True)
    dom = subprocess.run([*flags, "--dump-dom", app_url], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "Render" in dom and "Speakers" in dom and "demo" in dom                # Gradio's JS drew the page
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (900, 1280) and image.std() > 10    # not a blank page
    print(f"screenshot: {shot}")
