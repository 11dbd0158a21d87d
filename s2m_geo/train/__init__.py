"""Training S2M: datasets, augmentations, losses (:mod:`s2m_geo.train.losses`) and the trainer.

Import submodules directly (``from s2m_geo.train.losses import S2MLoss``); this package
imports nothing eagerly so that importing it stays cheap and torch-free.
"""
