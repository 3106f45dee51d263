"""Execution: run planned steps in sandboxes over overlay layers and commit the results."""
