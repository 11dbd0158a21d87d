"""Questions about change polygons: read them with the class table's words (``parse``), answer
them over the ``changes`` layer (``answer``), and the file side (``layer``)."""
