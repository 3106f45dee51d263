"""Seed, "Layering and Caching" and "Copying Local Files": stable layers first.

Run from the examples directory (paths are relative, as in the seed):

    cd examples && imagewright build layering.py::app_image
    # edit config.yaml, build again: only the copy steps run
"""

import imagewright as modal

good = (
    modal.Image.debian_slim()
    .apt_install("ffmpeg", "libsm6")
    .uv_pip_install("opencv-python")
    .copy_local_file("config.yaml", "/app/config.yaml")
)

base_image = (
    modal.Image.debian_slim().apt_install("ffmpeg", "libsm6").uv_pip_install("requests", "six")
)

app_image = (
    base_image.copy_local_dir("./src", "/app/src", ignore=["*.pyc", "__pycache__", "*.log"])
    .copy_local_file("config.yaml", "/app/config.yaml")
    .env({"HF_HOME": "/models/cache"})
)
