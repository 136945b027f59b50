import torch


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
