"""TransFusion detection head: heatmap proposals refined by one transformer decoder layer.

As in mmdet3d's TransFusionHead: ``shared_conv`` and ``heatmap_head`` (quantized) give a
class heatmap whose local maxima become queries; one decoder layer (nn.MultiheadAttention
self/cross attention, not quantized, and an FFN whose two Linears are) refines them;
Conv1d prediction heads (not quantized) regress the boxes. Boxes come out in the
LiDAR frame as (x, y, z, dx, dy, dz, yaw, vx, vy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from problems.bevfusion.mini.blocks import ConvModule
from problems.bevfusion.mini.registry import MODELS
from problems.bevfusion.mini.swin import FFN

HEAD_OUTPUTS = {"center": 2, "height": 1, "dim": 3, "rot": 2, "vel": 2}
HEATMAP_PRIOR_BIAS = -2.19
"""Focal-loss prior: every heatmap logit starts at sigmoid(-2.19) = 0.1."""


class PositionEmbeddingLearned(nn.Sequential):
    """BEV cell coordinates -> embedding, by two Conv1d (unquantized in the thesis)."""

    def __init__(self, dims: int) -> None:
        super().__init__(
            nn.Conv1d(2, dims, 1),
            nn.BatchNorm1d(dims),
            nn.ReLU(inplace=True),
            nn.Conv1d(dims, dims, 1),
        )

    def forward(self, xy: Tensor) -> Tensor:
        return super().forward(xy.transpose(1, 2)).transpose(1, 2)


class TransformerDecoderLayer(nn.Module):
    def __init__(self, dims: int, heads: int, feedforward: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dims, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dims, heads, batch_first=True)
        self.ffn = FFN(dims, feedforward)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(dims) for _ in range(3))
        self.self_posembed = PositionEmbeddingLearned(dims)
        self.cross_posembed = PositionEmbeddingLearned(dims)

    def forward(
        self, query: Tensor, key: Tensor, query_pos: Tensor, key_pos: Tensor
    ) -> Tensor:
        """Queries B x P x C attend to themselves, then to the BEV keys B x HW x C."""
        q = query + self.self_posembed(query_pos)
        query = self.norm1(query + self.self_attn(q, q, q, need_weights=False)[0])
        k = key + self.cross_posembed(key_pos)
        attended = self.cross_attn(
            query + self.self_posembed(query_pos), k, k, need_weights=False
        )[0]
        query = self.norm2(query + attended)
        return self.norm3(query + self.ffn(query))


class SeparateHead(nn.Module):
    """One small Conv1d stack per regression target plus the query classifier."""

    def __init__(self, dims: int, outputs: dict[str, int]) -> None:
        super().__init__()
        self.names = list(outputs)
        for name, channels in outputs.items():
            head = nn.Sequential(
                nn.Conv1d(dims, dims, 1, bias=False),
                nn.BatchNorm1d(dims),
                nn.ReLU(inplace=True),
                nn.Conv1d(dims, channels, 1),
            )
            self.add_module(name, head)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """B x P x C -> name: B x P x channels."""
        x = x.transpose(1, 2)
        return {name: getattr(self, name)(x).transpose(1, 2) for name in self.names}


@MODELS.register_module()
class TransFusionHead(nn.Module):
    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        num_classes: int,
        num_proposals: int,
        num_heads: int,
        ffn_channels: int,
        grid: tuple[int, int],
        bev_min: tuple[float, float],
        cell_size: float,
    ) -> None:
        super().__init__()
        self.num_classes, self.num_proposals = num_classes, num_proposals
        self.grid, self.cell_size = tuple(grid), cell_size
        self.register_buffer("bev_min", torch.tensor(bev_min), persistent=False)
        self.shared_conv = nn.Conv2d(in_channels, hidden_channels, 3, padding=1)
        self.heatmap_head = nn.Sequential(
            ConvModule(hidden_channels, hidden_channels, 3),
            nn.Conv2d(hidden_channels, num_classes, 3, padding=1),
        )
        self.class_encoding = nn.Conv1d(num_classes, hidden_channels, 1)
        self.decoder = nn.ModuleList(
            [TransformerDecoderLayer(hidden_channels, num_heads, ffn_channels)]
        )
        self.prediction_heads = nn.ModuleList(
            [SeparateHead(hidden_channels, HEAD_OUTPUTS | {"heatmap": num_classes})]
        )
        x, y = torch.meshgrid(
            torch.arange(grid[0]) + 0.5, torch.arange(grid[1]) + 0.5, indexing="ij"
        )
        self.register_buffer(
            "bev_pos", torch.stack([x, y], -1).view(1, -1, 2), persistent=False
        )
        self.init_weights()

    def init_weights(self) -> None:
        """Heatmap priors; mmengine calls this after the model's generic ``init_cfg``."""
        for conv in (self.heatmap_head[1], self.prediction_heads[0].heatmap[-1]):
            nn.init.constant_(conv.bias, HEATMAP_PRIOR_BIAS)

    def proposals(self, heatmap: Tensor, forced: Tensor | None = None) -> Tensor:
        """Top heatmap peaks as flat (class * X * Y + cell) indices, B x P.

        ``forced`` (training only: the ground-truth queries, -1 = none) takes the first
        slots and is kept out of the peak ranking, so every object gets a query even
        before the heatmap has learned anything.
        """
        peaks = heatmap * (heatmap == F.max_pool2d(heatmap, 3, 1, 1))
        flat = peaks.flatten(1)
        if forced is None:
            return flat.topk(self.num_proposals, dim=1).indices
        valid = forced >= 0
        spare = flat.shape[1]  # a scratch column absorbs the -1 (no forced query) slots
        flat = torch.cat([flat, flat.new_zeros(len(flat), 1)], 1)
        flat.scatter_(1, torch.where(valid, forced, spare), -1.0)
        ranked = flat[:, :spare].topk(self.num_proposals, dim=1).indices
        fill = torch.cumsum(~valid, 1) - 1
        return torch.where(valid, forced, ranked.gather(1, fill.clamp(min=0)))

    def forward(self, bev: Tensor, forced: Tensor | None = None) -> dict[str, Tensor]:
        """Per-query predictions (B x P x ...), plus the dense heatmap logits."""
        feat = self.shared_conv(bev)
        dense_heatmap = self.heatmap_head(feat)
        heatmap = dense_heatmap.detach().sigmoid()
        index = self.proposals(heatmap, forced)
        cells = self.grid[0] * self.grid[1]
        labels, cell = index // cells, index % cells
        flat = feat.flatten(2)
        query = flat.gather(2, cell[:, None].expand(-1, flat.shape[1], -1))
        one_hot = F.one_hot(labels, self.num_classes).float()
        query = (query + self.class_encoding(one_hot.transpose(1, 2))).transpose(1, 2)
        query_pos = self.bev_pos.expand(len(bev), -1, -1).gather(
            1, cell[..., None].expand(-1, -1, 2)
        )
        key_pos = self.bev_pos.expand(len(bev), -1, -1)
        for layer in self.decoder:
            query = layer(query, flat.transpose(1, 2), query_pos, key_pos)
        preds = self.prediction_heads[0](query)
        preds["center"] = preds["center"] + query_pos
        preds["query_labels"] = labels
        preds["query_cells"] = cell
        preds["query_heatmap_score"] = heatmap.flatten(1).gather(1, index)
        preds["dense_heatmap"] = dense_heatmap
        return preds

    def decode(self, preds: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(boxes B x P x 9, scores B x P, labels B x P) in the LiDAR frame."""
        labels = preds["query_labels"]
        class_score = preds["heatmap"].sigmoid().gather(2, labels[..., None])[..., 0]
        scores = class_score * preds["query_heatmap_score"]
        xy = preds["center"] * self.cell_size + self.bev_min
        yaw = torch.atan2(preds["rot"][..., 0:1], preds["rot"][..., 1:2])
        boxes = torch.cat(
            [xy, preds["height"], preds["dim"].exp(), yaw, preds["vel"]], -1
        )
        return boxes, scores, labels
