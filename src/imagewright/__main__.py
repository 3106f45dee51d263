"""`python -m imagewright` runs the CLI."""

from .cli.launch import main

main()
