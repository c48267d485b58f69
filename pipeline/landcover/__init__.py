"""Land cover → per-chip class proportions (``geokr-etl label``).

``legend`` maps each product's codes onto the GlobeLand30 classes, ``tiles``
indexes land-cover rasters in WGS84, ``lookup`` computes class areas for all
chips of a scene at once, ``labelset`` stores them in the chip store, ``run``
drives it all, and ``reference`` is the slow per-chip definition they are
tested against.
"""
