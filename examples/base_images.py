"""Seed, "Base Images": the three ways to start an image.

imagewright build examples/base_images.py::image_311
"""

import imagewright as modal

# Debian Slim (recommended for most cases); Python series of the machine you build on
image = modal.Image.debian_slim()

# Debian Slim with specific Python version
image_311 = modal.Image.debian_slim(python_version="3.11")

# Ubuntu (when Debian packages unavailable)
image_ubuntu = modal.Image.ubuntu()
