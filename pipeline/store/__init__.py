"""The chip store: the whole contract between tiling, labelling and training.

``chips``   the store itself (Zarr v3 group), its commit protocol and writer lock
``shards``  direct reader and writer of the chip shards (no zarr on the data path)
``labels``  label sets (``labels/<name>/``): writer, read-only view, validity rules
``records`` the typed scene, run and part records kept in the store's metadata
``reader``  the store opened for training in one call, and the chip reader

ETL stages write through these modules and the trainer reads through them; nothing
else knows the layout on disk.
"""
