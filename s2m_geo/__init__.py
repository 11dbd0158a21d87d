"""s2m-geo: find and describe change between two georeferenced scenes (S2M, "Masks Can Talk")."""

__version__ = "0.1.0"
