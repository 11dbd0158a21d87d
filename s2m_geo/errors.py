"""Errors the command line turns into one-line messages and exit codes (docs/design.md §3.7)."""

from __future__ import annotations


class S2MError(Exception):
    """Base class for expected failures of s2m-geo."""

    exit_code = 1


class InputError(S2MError):
    """Bad usage or bad input: the message names the file and the fix (exit code 2)."""

    exit_code = 2
