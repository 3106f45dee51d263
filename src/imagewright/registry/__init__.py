"""Images to and from OCI registries: the distribution protocol, push, pull and layer unpacking.

httpx is imported only here (by `client.py`), so building never loads it.
"""
