"""The Processing algorithm "Ask changes (S2M)" (``s2m:ask_changes``): ``s2m-geo ask``."""

import json
import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
    QgsProviderRegistry,
)

from .base import S2MAlgorithm

#: The files s2m-geo ask reads, by extension.
FORMATS = (".gpkg", ".geojson", ".json", ".fgb", ".parquet")


def layer_file(layer, command="ask"):
    """(path, layer name) of a file-based OGR changes layer that ``s2m-geo COMMAND`` can read;
    raises QgsProcessingException otherwise."""
    if layer.providerType() != "ogr":
        raise QgsProcessingException(
            "Layer '{0}' is not a file layer (provider '{1}'); s2m-geo {2} reads the changes file that "
            "'Detect changes (S2M)' or s2m-geo predict wrote.".format(layer.name(), layer.providerType(), command)
        )
    parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
    path = parts.get("path") or ""
    if not path.lower().endswith(FORMATS):
        raise QgsProcessingException(
            "Layer '{0}' is not a GeoPackage, GeoJSON, FlatGeobuf or GeoParquet file ({1}).".format(layer.name(), path)
        )
    name = parts.get("layerName") or ""
    if path.lower().endswith(".gpkg") and name not in ("", "changes"):
        raise QgsProcessingException(
            "Layer '{0}' is the '{1}' layer of {2}; {3} its 'changes' layer.".format(
                layer.name(), name, path, "ask" if command == "ask" else "choose"
            )
        )
    return path, name


class AskChangesAlgorithm(S2MAlgorithm):
    INPUT = "INPUT"
    QUESTION = "QUESTION"
    SELECT = "SELECT"
    OUTPUT = "OUTPUT"
    ANSWER = "ANSWER"
    COUNT = "COUNT"
    AREA = "AREA"
    HELP_ANCHOR = "s2m-geo-ask--questions-to-the-change-polygons"
    CLI_PARAMS = {"output": OUTPUT, "changes": INPUT}

    def name(self):
        return "ask_changes"

    def displayName(self):
        return self.tr("Ask changes (S2M)")

    def flags(self):
        # it selects features of a project layer: that must happen on the main thread
        return super().flags() | QgsProcessingAlgorithm.FlagNoThreading

    def tags(self):
        return self.tr("question,ask,query,count,area,where,s2m,masks can talk,building,destroyed").split(",")

    def shortHelpString(self):
        return self.tr(
            "Asks a changes layer (written by 'Detect changes (S2M)' or s2m-geo predict) a question in the "
            "class table's words, by running s2m-geo ask, e.g. <i>how many destroyed buildings are in the "
            "north-east?</i>, <i>how much area of new greenhouses is within 300 m of the centre?</i>, "
            "<i>the 5 largest razed houses</i>.\n\n"
            "The answer (a number and a sentence) goes to the log and the outputs ANSWER, COUNT and AREA; "
            "the matching polygons are selected in the layer and, when Matching changes is set, written "
            "as a new layer with the same fields.\n\n"
            "A question with a word s2m-geo does not know fails with the list of words it knows: it never "
            "guesses."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterVectorLayer(self.INPUT, self.tr("Changes layer"), [QgsProcessing.TypeVectorPolygon])
        )
        self.addParameter(QgsProcessingParameterString(self.QUESTION, self.tr("Question")))
        self.addParameter(
            QgsProcessingParameterBoolean(self.SELECT, self.tr("Select the matching polygons"), defaultValue=True)
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT,
                self.tr("Matching changes"),
                type=QgsProcessing.TypeVectorPolygon,
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputString(self.ANSWER, self.tr("Answer")))
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, self.tr("Number of matching polygons")))
        self.addOutput(QgsProcessingOutputNumber(self.AREA, self.tr("Their area (m²)")))

    def processAlgorithm(self, parameters, context, feedback):
        exe = self.executable()
        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
        path, _ = layer_file(layer)
        question = self.parameterAsString(parameters, self.QUESTION, context).strip()
        if not question:
            raise QgsProcessingException(self.tr("Ask a question, e.g. how many destroyed buildings are in the north?"))
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context) or None
        cmd = [exe, "ask", path, question, "--json"]
        if out:
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            cmd += ["-o", out, "--overwrite"]
        result = self.run_command(cmd, [out], feedback)
        try:
            reply = json.loads("\n".join(result.stdout))
        except ValueError:
            raise QgsProcessingException(
                self.tr("s2m-geo ask gave no answer it could read:\n{0}").format("\n".join(result.stdout[-5:]))
            ) from None
        feedback.pushInfo(reply["answer"])
        ids = [m["fid"] if "fid" in m else m["row"] for m in reply["matches"]]
        for m, fid in zip(reply["matches"], ids):
            feedback.pushInfo(
                "  {0}: {1} {2}, {3:,.0f} {4}, {5}".format(
                    fid, m["change_type"], m["category"], m["area_m2"], reply["area_unit"], m["direction"]
                )
            )
        if self.parameterAsBoolean(parameters, self.SELECT, context):
            layer.selectByIds(ids)
        return {self.ANSWER: reply["answer"], self.COUNT: reply["count"], self.AREA: reply["area"], self.OUTPUT: out}
