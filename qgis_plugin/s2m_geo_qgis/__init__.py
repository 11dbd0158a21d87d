"""s2m-geo for QGIS: the Processing algorithm "Detect changes (S2M)" and a toolbar button.

The plugin runs the ``s2m-geo`` command line in a subprocess (see ``runner.py``); it never
imports s2m-geo into QGIS's Python.
"""


def classFactory(iface):  # noqa: N802 - QGIS's name
    from .plugin import S2MPlugin

    return S2MPlugin(iface)
