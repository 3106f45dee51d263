"""Seed, "System Dependencies": apt_install, alone and with Python packages.

imagewright build examples/system_packages.py::audio_image
"""

import imagewright as modal

single = modal.Image.debian_slim().apt_install("ffmpeg")

several = modal.Image.debian_slim().apt_install(
    "ffmpeg", "libsm6", "libxext6", "libxrender-dev", "libgomp1"
)

opencv_image = (
    modal.Image.debian_slim()
    .apt_install("libsm6", "libxext6", "libxrender-dev")
    .uv_pip_install("opencv-python")
)

audio_image = (
    modal.Image.debian_slim()
    .apt_install("ffmpeg", "libsndfile1")
    .uv_pip_install("librosa", "soundfile")
)
