"""Seed, "Debugging Images": inspect an image from a function running inside it.

imagewright run examples/debugging.py
"""

import imagewright as modal

my_image = modal.Image.debian_slim(python_version="3.11").uv_pip_install("requests")
app = modal.App("debugging", image=my_image)


@app.function(image=my_image)
def debug_image():
    import subprocess
    import sys

    # Check Python version
    print(f"Python: {sys.version}")

    # Check installed packages
    result = subprocess.run(["pip", "list"], capture_output=True, text=True)
    print(result.stdout)

    # Check system packages
    result = subprocess.run(["dpkg", "-l"], capture_output=True, text=True)
    print(result.stdout[:1000])  # First 1000 chars

    return "Debug complete"


@app.local_entrypoint()
def main():
    print(debug_image.remote())
