"""The function channel's wire format and the in-container bootstrap: standard library only.

The host binds this package into every function container, where it runs on the image's own
Python, so it imports nothing else of imagewright.
"""
