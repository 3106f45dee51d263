"""Running Python functions inside containers of built images."""
