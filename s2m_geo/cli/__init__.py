"""The ``s2m-geo`` command line (``main`` is the console-script entry point)."""

from .main import cli, main

__all__ = ["cli", "main"]
