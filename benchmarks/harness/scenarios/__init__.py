"""The scenarios, one module per kind: builds (`builds`), function calls (`calls`), and
exports, pushes and pulls (`transfers`)."""
