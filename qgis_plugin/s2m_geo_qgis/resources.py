"""Paths and icons shipped with the plugin."""

import os

from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QIcon

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
ICON_PATH = os.path.join(PLUGIN_DIR, "icon.svg")
#: The project's README: build_zip.py puts it in the plugin folder; a source checkout has it
#: two folders up.
README_PATHS = (
    os.path.join(PLUGIN_DIR, "README.md"),
    os.path.join(os.path.dirname(os.path.dirname(PLUGIN_DIR)), "README.md"),
)
ONLINE_README = "https://github.com/s2m-geo/s2m-geo"


def icon() -> QIcon:
    return QIcon(ICON_PATH)


def help_url(section: str) -> str:
    """The README's ``section`` to open as help: the local copy (works offline), else online."""
    for path in README_PATHS:
        if os.path.isfile(path):
            url = QUrl.fromLocalFile(path)
            url.setFragment(section)
            return url.toString()
    return ONLINE_README + "#" + section
