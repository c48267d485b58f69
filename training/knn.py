"""Weighted cosine kNN on frozen features (Wu et al. 2018, the usual SSL monitor).

Each held-out chip votes among its ``k`` most similar bank chips (cosine similarity
of backbone features), each vote weighted by exp(similarity / t); the prediction is
the class with the most weight, compared with the chip's dominant class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_accuracy(bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor,
                 query_labels: torch.Tensor, k: int, t: float) -> float:
    """Top-1 accuracy of weighted kNN; labels are class indices (>= 0)."""
    bank = F.normalize(bank.float(), dim=1)
    query = F.normalize(query.float(), dim=1)
    n_classes = int(max(bank_labels.max().item(), query_labels.max().item())) + 1
    sim, idx = (query @ bank.T).topk(min(k, len(bank)), dim=1)
    votes = torch.zeros(len(query), n_classes, device=query.device)
    votes.scatter_add_(1, bank_labels[idx], (sim / t).exp())
    return float((votes.argmax(1) == query_labels).float().mean().item())
