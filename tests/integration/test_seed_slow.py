"""The seed's blocks with their exact packages, where those download hundreds of megabytes.

Opt in with IMAGEWRIGHT_SLOW_TESTS=1. The ML image (torch 2.1.0 with CUDA, several GB) is left
to `examples/complete.py::ml_image`.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from uv import find_uv_bin

import imagewright as modal
from imagewright.exception import ImageBuildError

pytestmark = pytest.mark.skipif(
    os.environ.get("IMAGEWRIGHT_SLOW_TESTS") != "1", reason="opt in with IMAGEWRIGHT_SLOW_TESTS=1"
)


def test_system_dependencies_exact(builder):
    single = modal.Image.debian_slim().apt_install("ffmpeg")
    assert "ffmpeg version" in builder.run(single, "ffmpeg -version | head -1")
    several = modal.Image.debian_slim().apt_install(
        "ffmpeg", "libsm6", "libxext6", "libxrender-dev", "libgomp1"
    )
    out = builder.run(
        several, "dpkg -s ffmpeg libsm6 libxext6 libxrender-dev libgomp1 | grep -c 'ok installed'"
    )
    assert out.strip() == "5"


def test_opencv_and_audio_images_exact(builder):
    opencv_image = (
        modal.Image.debian_slim()
        .apt_install("libsm6", "libxext6", "libxrender-dev")
        .uv_pip_install("opencv-python")
    )
    # The block builds. Importing cv2 also needs libGL and GLib, which the seed's list leaves
    # out (on Modal too: its slim images have neither); with them the import works.
    assert "Name: opencv-python" in builder.run(opencv_image, "python -m pip show opencv-python")
    with_gl = opencv_image.apt_install("libgl1", "libglib2.0-0")
    out = builder.run(with_gl, "python -c 'import cv2; print(cv2.__version__)'")
    assert out.strip()[0].isdigit()
    audio_image = (
        modal.Image.debian_slim()
        .apt_install("ffmpeg", "libsndfile1")
        .uv_pip_install("librosa", "soundfile")
    )
    out = builder.run(
        audio_image, "python -c 'import librosa, soundfile; print(soundfile.__version__)'"
    )
    assert out.strip()[0].isdigit()


def test_layering_good_order_exact(builder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("model: small\n")
    image = (
        modal.Image.debian_slim()
        .apt_install("ffmpeg", "libsm6")
        .uv_pip_install("opencv-python")
        .copy_local_file("config.yaml", "/app/config.yaml")
    )
    out = builder.run(image, "cat /app/config.yaml; python -c 'import cv2'")
    assert out.strip() == "model: small"


def test_web_scraping_image_exact(builder):
    packages = ("selenium==4.15.0", "beautifulsoup4==4.12.0", "requests==2.31.0", "lxml==4.9.0")
    # force_build: an earlier run may have cached this very step (see with_headers below)
    scraping_image = (
        modal.Image.debian_slim()
        .apt_install("chromium", "chromium-driver")
        .uv_pip_install(*packages, force_build=True)
    )
    # lxml 4.9.0 has no wheel for Python 3.11, so the seed's block must compile it, and the
    # headers it needs are not in the list: the build fails, clearly, as it would on Modal.
    # (Once built, uv keeps the wheel in the shared cache, so forget it first.)
    for uv_cache in (builder.store.root / "cache" / "packages").glob("*/uv"):
        clean = [find_uv_bin(), "cache", "clean", "lxml", "--cache-dir", str(uv_cache)]
        subprocess.run(clean, check=True)
    with pytest.raises(ImageBuildError) as failure:
        builder.build(scraping_image)
    assert "Failed to build `lxml==4.9.0`" in str(failure.value)
    assert "libxml2 and libxslt development packages" in str(failure.value)
    with_headers = (
        modal.Image.debian_slim()
        .apt_install("chromium", "chromium-driver", "libxml2-dev", "libxslt1-dev")
        .uv_pip_install(*packages)
    )
    out = builder.run(
        with_headers,
        "chromium --version; chromedriver --version;"
        " python -c 'import selenium, bs4, requests, lxml'; python -m pip show selenium",
    )
    # (selenium 4.15.0's own __version__ says 4.14.0, so ask pip)
    assert "Chromium" in out and "ChromeDriver" in out and "Version: 4.15.0" in out
