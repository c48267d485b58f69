"""``model_card.json``: everything needed to use, trust and reproduce the exported backbones."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline.report import utc_now
from pipeline.versions import software_versions

CARD_NAME = "model_card.json"
LABELLED = ("geokr", "classification")  # the methods whose head has one output per class
BATCHNORM = {
    "geokr": "teacher runs in eval mode; running stats follow the weights' EMA",
    "classification": "per-process batch statistics",
    "simclr": "per-process batch statistics over both views (one forward of 2N)",
    "mocov2": "per-process; key batch shuffled across processes under DDP (shuffling BN); "
              "momentum update of parameters only, the key encoder keeps its own stats",
    "byol": "per-process batch statistics over both views; target keeps its own stats",
}


def model_card(meta: dict[str, Any], args: dict[str, Any], metrics: dict[str, Any],
               state: dict[str, Any], method: dict[str, Any], exported: dict[str, str]
               ) -> dict[str, Any]:
    """``state`` holds optimizer_steps and images_seen, so budgets can be compared."""
    return {
        "model": method["title"],
        "method": method,
        "recommended": "backbone.pth",
        "exported": {"files": exported,
                     "note": "backbone.pth is the network to take downstream"},
        "arch": meta["arch"],
        "head": {"module": meta["head_name"],
                 "outputs": len(meta["classes"]) if method["name"] in LABELLED else None,
                 "note": "backbone files hold every torchvision key except this module's"},
        "classes": meta["classes"],
        "label_set": meta["labels"],
        "sampling": meta["sampling"],
        "store": meta["store"],
        "store_fingerprint": meta["fingerprint"],
        "n_chips": meta["n_chips"],
        "split": meta["split"],
        "normalisation": {"mean": meta["norm_mean"], "std": meta["norm_std"],
                          "scale": "RGB uint8 / 255, then (x - mean) / std",
                          "source": meta["norm_source"]},
        "batchnorm": BATCHNORM[method["name"]],
        "arguments": args,
        "training_state": state,
        "metrics": metrics,
        "versions": software_versions(),
        "written": utc_now(),
    }


def write_json_atomic(doc: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)
