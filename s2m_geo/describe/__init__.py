"""S2M text: the quadruple rule (where / how many / what / how) and its sentence templates.

Pure functions of a class-id mask and a class table (numpy only)::

    from s2m_geo.classes import load_class_table
    from s2m_geo.describe import mask_caption
    mask_caption(mask, load_class_table("gaza_change"))
    # 'There are several destroyed buildings in the northeast region.'
"""

from .geo import (
    GeoError,
    GeoFrame,
    PixelAreas,
    describe_mask_geo,
    ground_area_m2,
    pixel_areas,
    pixel_ground_area_m2,
)
from .rules import (
    DIRECTIONS,
    QUANTITIES,
    QUANTITY_THRESHOLDS_PX,
    MaskError,
    Quadruple,
    class_pixel_stats,
    direction_from_centroid,
    direction_from_fractions,
    quadruples_from_mask,
    quantity_from_area,
    quantity_from_pixels,
)
from .templates import (
    NO_CHANGE_SENTENCE,
    NUM_TEMPLATES,
    TEMPLATES,
    describe_mask,
    mask_caption,
    pick_template,
    sentence,
)

__all__ = [
    "DIRECTIONS",
    "QUANTITIES",
    "QUANTITY_THRESHOLDS_PX",
    "MaskError",
    "Quadruple",
    "class_pixel_stats",
    "direction_from_centroid",
    "direction_from_fractions",
    "quadruples_from_mask",
    "quantity_from_area",
    "quantity_from_pixels",
    "NO_CHANGE_SENTENCE",
    "NUM_TEMPLATES",
    "TEMPLATES",
    "describe_mask",
    "mask_caption",
    "pick_template",
    "sentence",
    "GeoError",
    "GeoFrame",
    "PixelAreas",
    "describe_mask_geo",
    "ground_area_m2",
    "pixel_areas",
    "pixel_ground_area_m2",
]
