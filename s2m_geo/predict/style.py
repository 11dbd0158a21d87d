"""The change raster's QGIS style: ``NAME.qml`` beside ``NAME.tif``, which QGIS applies by itself
when it opens the raster.

The GeoTIFF's own colour table cannot say "transparent" (TIFF colour maps have no alpha), so
without a style QGIS paints class 0 (no change, most of a scene) black over the map. The style
is a paletted renderer with one entry per class of the table, labelled as in the ``changes``
layer's legend: class 0 fully transparent, the change classes in the table's colours. Pixel
value 255 (nodata, outside the valid area) is the raster's nodata value and has no entry, so
it is never drawn either.
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import write_text
from ..classes import ChangeClass, ClassTable
from ..escaping import xml_attr

#: What the legend calls class 0 (its category and change type are both "none").
NO_CHANGE_LABEL = "no change"


def style_path(raster: str | Path) -> Path:
    """Where QGIS looks for a raster's default style: the same name with ``.qml``."""
    return Path(raster).with_suffix(".qml")


def legend_label(c: ChangeClass) -> str:
    """A class's name in a legend: 'destroyed building', ...; 'no change' for class 0."""
    return NO_CHANGE_LABEL if c.id == 0 else c.label


def raster_qml(table: ClassTable) -> str:
    """A QGIS style for the change raster: paletted by class id, class 0 transparent."""
    entries = "".join(
        f"<paletteEntry value={xml_attr(str(c.id))} color={xml_attr(c.color)} "
        f"alpha={xml_attr('0' if c.id == 0 else '255')} label={xml_attr(legend_label(c))}/>"
        for c in table
    )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.22.0" styleCategories="Symbology">'
        "<pipe>"
        '<rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">'
        "<rasterTransparency/>"
        f"<colorPalette>{entries}</colorPalette>"
        "</rasterrenderer>"
        '<brightnesscontrast brightness="0" contrast="0" gamma="1"/>'
        '<huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeStrength="100" '
        'colorizeRed="255" colorizeGreen="128" colorizeBlue="128" invertColors="0"/>'
        '<rasterresampler maxOversampling="2"/>'
        "</pipe>"
        "<blendMode>0</blendMode>"
        "</qgis>\n"
    )


def write_raster_style(raster: str | Path, table: ClassTable) -> Path:
    """Write the change raster's style beside it (atomically); return its path."""
    return write_text(style_path(raster), raster_qml(table))


__all__ = ["NO_CHANGE_LABEL", "legend_label", "raster_qml", "style_path", "write_raster_style"]
