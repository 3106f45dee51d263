"""Running an app's calls on a Ray cluster: `imagewright run --cluster ray://HOST:PORT`.

Ray schedules; imagewright still runs every input in its own sandboxed containers. Each
container lives on a node inside a Ray actor (node.py), which builds or pulls the image into
that node's own store and then serves inputs the way a local container does. The caller's side
(driver.py) stands in for a local Container, so `.remote`, `.map`, `.spawn` and class methods
need no change. Layers reach nodes through the cache registry, never through Ray's object store;
only the small layer of attached local files (the function's source) travels through Ray, once
per node.

Ray is an optional extra (`pip install imagewright[ray]`) and is imported only here.
"""
