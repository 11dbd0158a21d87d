"""``python -m s2m_geo.cli``: the same as the ``s2m-geo`` command."""

from .main import main

main()
