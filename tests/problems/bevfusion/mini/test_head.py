import torch

from problems.bevfusion.mini.loss import box_codes, forced_queries, heatmap_targets


def test_proposals_are_peaks_and_forced_queries_come_first(untrained_model):
    head = untrained_model.bbox_head
    heatmap = torch.zeros(1, 4, 32, 32)
    heatmap[0, 1, 5, 7] = 0.9
    heatmap[0, 1, 5, 8] = 0.8  # not a local maximum
    heatmap[0, 2, 20, 3] = 0.7
    cells = 32 * 32
    top = head.proposals(heatmap)[0].tolist()
    assert top[:2] == [1 * cells + 5 * 32 + 7, 2 * cells + 20 * 32 + 3]
    assert 1 * cells + 5 * 32 + 8 not in top
    forced = torch.full((1, head.num_proposals), -1)
    forced[0, 0] = 2 * cells + 20 * 32 + 3
    chosen = head.proposals(heatmap, forced)[0].tolist()
    assert chosen[0] == forced[0, 0] and chosen[1] == 1 * cells + 5 * 32 + 7
    assert len(set(chosen)) == len(chosen)


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


def test_training_loss_is_finite_and_decodes_boxes(untrained_model, test_batch):
    model = untrained_model
    data = model.data_preprocessor(test_batch, True)
    with torch.no_grad():
        losses = model(**data, mode="loss")
        preds = model(**data, mode="tensor")
    assert set(losses) == {"loss_heatmap", "loss_cls", "loss_bbox"}
    assert all(torch.isfinite(v) for v in losses.values())
    boxes, scores, labels = model.bbox_head.decode(preds)
    assert boxes.shape == (4, 24, 9) and (boxes[..., 3:6] > 0).all()
    assert scores.shape == labels.shape == (4, 24)
