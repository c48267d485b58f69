"""Running the ETL on batch clusters: dask-jobqueue workers, or job arrays with ``--part``."""

from pipeline.hpc.options import cluster_options, open_client, part_option
from pipeline.hpc.parts import Part, part_store_path, select_part

__all__ = [
    "Part", "cluster_options", "open_client", "part_option", "part_store_path", "select_part",
]
