"""A small web app, served on this machine as `modal serve` would serve it on Modal.

imagewright serve examples/web.py     # open the printed URL; edit this file and reload the page
imagewright deploy examples/web.py    # the same in the background; `imagewright app stop web`
"""

import modal

image = modal.Image.debian_slim(python_version="3.11").uv_pip_install("fastapi==0.165.0")
app = modal.App("web", image=image)

PAGE = """<!doctype html>
<html>
<head><title>imagewright</title></head>
<body style="margin: 0; font-family: sans-serif; background: #ffffff">
  <header style="height: 160px; background: #1f6feb; color: #ffffff; padding: 24px">
    <h1 style="margin: 0">Served by imagewright</h1>
  </header>
  <p style="padding: 24px">Try <a href="/square?x=12">/square?x=12</a>.</p>
</body>
</html>
"""


@app.function()
@modal.concurrent(max_inputs=20)
@modal.asgi_app()
def site():
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    web = FastAPI(title="imagewright example")

    @web.get("/", response_class=HTMLResponse)
    def home():
        return PAGE

    @web.get("/square")
    def square(x: int = 3):
        return {"square": x * x}

    return web
