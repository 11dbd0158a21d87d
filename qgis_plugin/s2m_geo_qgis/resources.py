"""Paths and icons shipped with the plugin."""

import os

from qgis.PyQt.QtGui import QIcon

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
ICON_PATH = os.path.join(PLUGIN_DIR, "icon.svg")


def icon() -> QIcon:
    return QIcon(ICON_PATH)
