"""GeoKR ETL: scenes to chips, chips to land-cover proportion vectors."""

__version__ = "0.1.0"
