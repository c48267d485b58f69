"""Running the ETL on batch clusters: dask-jobqueue workers, or job arrays with ``--part``."""

from pipeline.hpc.options import ClusterOptions, cluster_options, open_client, part_option
from pipeline.hpc.parts import Part, part_store_path, select_part

__all__ = [
    "ClusterOptions", "Part", "cluster_options", "open_client", "part_option", "part_store_path",
    "select_part",
]
