"""pytest setup for tests_qgis (see harness.py and scripts/test_qgis.sh).

Only under a Python that has QGIS (``/usr/bin/python3`` on Debian) does this load anything.
Under any other Python, e.g. the project venv's pytest, it is inert and collects nothing:
no environment changes, no hooks, no QGIS profile.
"""

import importlib.util

if importlib.util.find_spec("qgis") is None:
    collect_ignore_glob = ["*.py"]
else:
    from harness import *  # noqa: F401,F403 - fixtures and hooks
    from harness import pytest_sessionfinish, pytest_unconfigure  # noqa: F401 - hooks, explicitly
