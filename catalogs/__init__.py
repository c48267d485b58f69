"""GeoKR's data catalogs (sensor profiles, land-cover legends, cluster configs) as package data.

``catalogs/<kind>/*.yaml`` ships inside the wheel, so a non-editable install finds
them through :mod:`importlib.resources` (see :func:`pipeline.catalog.catalog_dir`).
"""
