"""OCI registries: the distribution protocol, pulls and the shared layer cache (push is
export/push.py, with the other ways an image leaves the store), and `resolve.py`, the Resolver
the planner is given for registry images and ADD URLs (`download.py`).

httpx is imported only here (by `client.py` and `download.py`), so building never loads it.
"""
