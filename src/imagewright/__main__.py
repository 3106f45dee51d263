"""`python -m imagewright` runs the CLI."""

from .cli.main import main

main()
