"""Run functions in a built image: the example `make demo` ends with.

imagewright run examples/functions.py              # the local entrypoint
imagewright run examples/functions.py::square --x 3
"""

import imagewright as modal

image = modal.Image.debian_slim(python_version="3.11").uv_pip_install("numpy")
app = modal.App("demo", image=image)


@app.function(timeout=60)
def square(x):
    import numpy as np

    return int(np.square(x))


@app.local_entrypoint()
def main():
    print(square.remote(4), sum(square.map(range(100))))
