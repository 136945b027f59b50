"""The head's training targets: forced queries, heatmap targets and box codes."""

import torch

from problems.bevfusion.mini.loss import box_codes, forced_queries, heatmap_targets


def test_targets_put_each_box_in_its_cell(untrained_model):
    head = untrained_model.bbox_head
    boxes = torch.tensor(
        [
            [0.1, 0.1, -1.0, 4.0, 2.0, 1.5, 0.5, 1.0, 0.0],
            [0.5, 0.5, -1.0, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0],  # same class and cell
            [-25.0, 25.0, -1.0, 0.7, 0.7, 1.7, 0.0, 0.0, 0.0],
        ]
    )
    labels = torch.tensor([0, 0, 2])
    forced = forced_queries([boxes], [labels], head)[0].tolist()
    assert forced[:3] == [16 * 32 + 16, -1, 2 * 1024 + 0 * 32 + 31]
    target = heatmap_targets([boxes], [labels], 4, head)
    assert target[0, 0, 16, 16] == 1 and target[0, 2, 0, 31] == 1
    codes = box_codes(boxes[:1], head.bev_min, head.cell_size)[0]
    assert torch.allclose(codes[:2], torch.tensor([16.0625, 16.0625]))
    assert torch.allclose(codes[6:8], torch.tensor([0.4794, 0.8776]), atol=1e-4)
