"""The Processing algorithm "Summarize changes by zone (S2M)" (``s2m:zones``): ``s2m-geo zones``."""

import os

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsVectorLayer,
    QgsWkbTypes,
)

from . import runner
from .algorithm import LoadStoredStyle
from .ask_algorithm import layer_file
from .base import S2MAlgorithm

#: Zone files the CLI is given as they are; any other layer is exported to a GeoPackage first.
ZONE_FORMATS = ["gpkg", "geojson", "json", "fgb", "shp"]
#: The layer s2m-geo zones writes in its GeoPackage (s2m_geo.zones.io.ZONES_LAYER).
ZONES_LAYER = "zones"
NOT_COVERED = "not covered"


def first_polygon_layer(path):
    """The name of the first polygon layer of ``path``: the one ``s2m-geo zones`` reads."""
    for sub in QgsProviderRegistry.instance().querySublayers(path):
        if QgsWkbTypes.geometryType(sub.wkbType()) == QgsWkbTypes.PolygonGeometry:
            return sub.name()
    return None


def _given(value):
    """Whether a parameter value is set (not None, not an empty string)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


class ZonesAlgorithm(S2MAlgorithm):
    INPUT = "INPUT"
    ZONES = "ZONES"
    FIELD = "FIELD"
    GRID = "GRID"
    CLASSES = "CLASSES"
    OUTPUT = "OUTPUT"
    N_ZONES = "N_ZONES"
    N_NOT_COVERED = "N_NOT_COVERED"
    HELP_ANCHOR = "s2m-geo-zones--change-per-district-block-or-grid-cell"
    CLI_PARAMS = {"field": FIELD, "grid": GRID, "classes": CLASSES, "output": OUTPUT, "zones": ZONES, "changes": INPUT}

    def name(self):
        return "zones"

    def displayName(self):
        return self.tr("Summarize changes by zone (S2M)")

    def tags(self):
        return self.tr(
            "zones,districts,neighbourhoods,grid,summary,statistics,count,area,coverage,s2m,masks can talk,damage"
        ).split(",")

    def shortHelpString(self):
        return self.tr(
            "Summarizes a changes layer (written by 'Detect changes (S2M)' or s2m-geo predict/batch) per zone "
            "polygon (districts, neighbourhoods, blocks) or per cell of a grid over the scenes, by running:\n\n"
            "<code>s2m-geo zones CHANGES ZONES -o OUTPUT --field NAME</code>\n"
            "<code>s2m-geo zones CHANGES --grid 3x3 -o OUTPUT</code>\n\n"
            "Give either <b>Zones</b> (any polygon layer, any CRS; with <b>Zone name field</b> naming "
            "each zone, default its row number) or a <b>Grid</b> (rows x columns, e.g. 3x3: cells A1 "
            "(north-west) to C3), not both. Zones that are not a GeoPackage, GeoJSON, FlatGeobuf or "
            "Shapefile file layer (memory and database layers, a filter, selected features only) are "
            "exported to a temporary GeoPackage first. The changes must be a file layer: the "
            "GeoPackage's 'changes' layer (its 'scenes' layer gives the coverage).\n\n"
            "Per zone: its status (covered, partly covered, <b>not covered</b>: no imagery, its changes "
            "unknown rather than zero), the covered fraction, per class the number of change polygons "
            "that overlap it and their ground area inside it (polygons are cut at zone borders), and "
            "the zone's own S2M sentences. The result (GeoPackage layer 'zones', each zone's own "
            "geometry and CRS) loads named after the zones and the changes; the table goes to the Log."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterVectorLayer(self.INPUT, self.tr("Changes layer"), [QgsProcessing.TypeVectorPolygon])
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.ZONES, self.tr("Zones"), [QgsProcessing.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.FIELD,
                self.tr("Zone name field (empty: the row number)"),
                parentLayerParameterName=self.ZONES,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.GRID, self.tr("Grid instead of zones (rows x columns, e.g. 3x3)"), optional=True
            )
        )
        classes = QgsProcessingParameterString(self.CLASSES, self.tr("Class table (empty: gaza_change)"), optional=True)
        classes.setFlags(classes.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(classes)
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, self.tr("Zone summary"), type=QgsProcessing.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.N_ZONES, self.tr("Number of zones")))
        self.addOutput(QgsProcessingOutputNumber(self.N_NOT_COVERED, self.tr("Zones no imagery covers")))

    # -- checks -------------------------------------------------------------------------
    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS's name
        missing = self.missing_executable()
        if missing:
            return False, missing
        has_zones = _given(parameters.get(self.ZONES))
        has_grid = _given(parameters.get(self.GRID))
        if has_zones == has_grid:
            return False, self.tr("Give either Zones (a polygon layer) or a Grid such as 3x3, not {0}.").format(
                self.tr("both") if has_zones else self.tr("neither")
            )
        return super().checkParameterValues(parameters, context)

    # -- inputs ---------------------------------------------------------------------------
    def _changes_path(self, parameters, context):
        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
        if layer.subsetString():
            raise QgsProcessingException(
                self.tr(
                    "Changes layer '{0}' has a filter ({1}); s2m-geo zones reads the whole changes file. "
                    "Remove the filter (zones summarize every change polygon)."
                ).format(layer.name(), layer.subsetString())
            )
        path, _ = layer_file(layer, "zones")
        return path, layer.name()

    def _zones_path(self, parameters, context, feedback):
        """A file the CLI reads as the zones (its first polygon layer is the chosen layer),
        exporting the layer to a temporary GeoPackage when it is not such a file."""
        path, name = self.parameterAsCompatibleSourceLayerPathAndLayerName(
            parameters, self.ZONES, context, ZONE_FORMATS, "gpkg", feedback
        )
        if not path:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.ZONES))
        if name and os.path.isfile(path) and first_polygon_layer(path) != name:
            # the CLI reads the file's first polygon layer: hand it a file with this one only
            path = self.parameterAsCompatibleSourceLayerPath(parameters, self.ZONES, context, [], "gpkg", feedback)
        if os.path.abspath(path).startswith(os.path.abspath(QgsProcessingUtils.tempFolder()) + os.sep):
            feedback.pushInfo(self.tr("Zones exported to a temporary GeoPackage: {0}").format(path))
        return path

    def _zones_name(self, parameters, context):
        layer = self.parameterAsVectorLayer(parameters, self.ZONES, context)
        return layer.name() if layer is not None else self.tr("zones")

    # -- run ------------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        exe = self.executable()
        changes, changes_name = self._changes_path(parameters, context)
        grid = self.parameterAsString(parameters, self.GRID, context).strip() or None
        has_zones = _given(parameters.get(self.ZONES))
        if has_zones == (grid is not None):
            raise QgsProcessingException(self.tr("Give either Zones (a polygon layer) or a Grid such as 3x3."))
        zones = self._zones_path(parameters, context, feedback) if has_zones else None
        fields = self.parameterAsFields(parameters, self.FIELD, context)
        field = fields[0] if fields else None
        classes = self.parameterAsString(parameters, self.CLASSES, context).strip() or None
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if not out.lower().endswith(".gpkg"):
            raise QgsProcessingException(
                self.tr("Zone summary must be a GeoPackage file (.gpkg), got: {0}").format(out)
            )
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)

        cmd = runner.build_zones_command(exe, changes, out, zones=zones, field=field, grid=grid, classes=classes)
        self.run_command(
            cmd,
            [out],
            feedback,
            on_start=lambda pid: feedback.pushDebugInfo("s2m-geo started as process {0}".format(pid)),
            on_output=lambda line: feedback.pushInfo(line) if line.strip() else None,
        )
        if not os.path.isfile(out):
            raise QgsProcessingException(self.tr("s2m-geo finished but wrote no {0}").format(out))

        uri = out + "|layername=" + ZONES_LAYER
        layer = QgsVectorLayer(uri, ZONES_LAYER, "ogr")
        if not layer.isValid():
            raise QgsProcessingException(self.tr("s2m-geo wrote {0} without a '{1}' layer").format(out, ZONES_LAYER))
        n_zones = layer.featureCount()
        request = QgsFeatureRequest().setFilterExpression("status = '{0}'".format(NOT_COVERED))
        not_covered = [f["zone"] for f in layer.getFeatures(request)]
        del layer
        if not_covered:
            feedback.pushWarning(
                self.tr("No imagery covers {0} zone(s) ({1}): their changes are unknown, not zero.").format(
                    len(not_covered), ", ".join(map(str, not_covered))
                )
            )
        name = "{0} — {1}".format(
            self.tr("grid {0}").format(grid) if grid else self._zones_name(parameters, context), changes_name
        )
        self._load_zones_layer(context, out, uri, name)
        feedback.setProgress(100)
        return {self.OUTPUT: out, self.N_ZONES: n_zones, self.N_NOT_COVERED: len(not_covered)}

    def _load_zones_layer(self, context, out, uri, name):
        """Load the GeoPackage's 'zones' layer by name, with the style the CLI stored."""
        if not context.willLoadLayerOnCompletion(out):
            return
        details = context.layerToLoadOnCompletionDetails(out)
        layers = dict(context.layersToLoadOnCompletion())
        layers.pop(out, None)
        zones = QgsProcessingContext.LayerDetails(
            name, details.project, self.OUTPUT, QgsProcessingUtils.LayerHint.Vector
        )
        zones.setPostProcessor(LoadStoredStyle.create())
        layers[uri] = zones
        context.setLayersToLoadOnCompletion(layers)
