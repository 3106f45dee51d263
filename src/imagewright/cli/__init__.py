"""The `imagewright` command line: thin commands over the library."""
