import json

import pytest
import torch
import torch.nn.functional as F

from genlab.data.masks import MaskBatches, MaskSource
from genlab.errors import GenlabError
from genlab.models.sam import SamConfig, SamModel
from genlab.nn.sam.prompt_encoder import PositionEmbeddingRandom, PromptEncoder
from genlab.nn.sam.session import dice_loss, focal_loss, loss_iou, mask_losses, session_click
from genlab.train.trainer import TrainConfig, Trainer

from .segment_helpers import TINY_SAM, tiny_sam


def test_prompt_encoder_shapes():
    enc = PromptEncoder(embed_dim=32, embedding_size=4, input_size=32, mask_in_chans=8)
    coords, labels = torch.rand(5, 3, 2) * 32, torch.tensor([[1, 0, -1]] * 5)
    sparse, dense = enc(coords, labels, None, None)
    assert sparse.shape == (5, 3, 32) and dense.shape == (5, 32, 4, 4)
    boxes = torch.tensor([[1.0, 2.0, 20.0, 30.0]] * 5)
    sparse, _ = enc(coords, labels, boxes, None)
    assert sparse.shape == (5, 5, 32)  # 3 points + 2 box corners
    sparse, dense = enc(None, None, boxes, torch.randn(5, 1, 16, 16))
    assert sparse.shape == (5, 2, 32) and dense.shape == (5, 32, 4, 4)
    assert enc.mask_input_size == 16 and enc.dense_pe().shape == (1, 32, 4, 4)
    sparse, dense = enc(None, None, None, None, count=3)  # nothing: no tokens, the "no mask" embedding
    assert sparse.shape == (3, 0, 32) and torch.allclose(dense[:, :, 0, 0], enc.no_mask_embed.weight.expand(3, -1))


def test_padding_points_and_missing_boxes_carry_no_position():
    enc = PromptEncoder(embed_dim=32, embedding_size=4, input_size=32)
    a = enc.embed_points(torch.tensor([[[3.0, 4.0]]]), torch.tensor([[-1]]))
    b = enc.embed_points(torch.tensor([[[30.0, 9.0]]]), torch.tensor([[-1]]))
    assert torch.equal(a, b) and torch.equal(a[0, 0], enc.not_a_point_embed.weight[0])
    nan_box = torch.full((1, 4), float("nan"))
    sparse, _ = enc(None, None, nan_box, None)
    assert torch.equal(sparse[0, 0], enc.not_a_point_embed.weight[0])
    fg = enc.embed_points(torch.tensor([[[3.0, 4.0]]]), torch.tensor([[1]]))
    bg = enc.embed_points(torch.tensor([[[3.0, 4.0]]]), torch.tensor([[0]]))
    assert not torch.allclose(fg, bg)  # the label changes the token


def test_random_fourier_features_separate_nearby_points():
    pe = PositionEmbeddingRandom(num_pos_feats=64)
    x = torch.tensor([[0.5, 0.5], [0.52, 0.5], [0.9, 0.1]])
    f = pe.encode(x)
    assert f.shape == (3, 128) and torch.allclose(f.norm(dim=1), torch.full((3,), 8.0))  # sin² + cos² = 1 each
    sim = f @ f.T / 64
    assert sim[0, 1] > sim[0, 2] and pe.grid(4, 6).shape == (128, 4, 6)


def test_decoder_outputs_three_masks_or_one_with_iou():
    model = tiny_sam()
    feats = model.encode(torch.rand(2, 3, 32, 32))
    assert feats.embedding.shape == (2, 32, 4, 4)
    index = torch.tensor([0, 0, 1])
    coords, labels = torch.rand(3, 2, 2) * 32, torch.ones(3, 2, dtype=torch.long)
    logits, iou = model.decode(feats, index, coords=coords, labels=labels, multimask=True)
    assert logits.shape == (3, 3, 16, 16) and iou.shape == (3, 3) and ((iou >= 0) & (iou <= 1)).all()
    logits, iou = model.decode(feats, index, coords=coords, labels=labels, multimask=False)
    assert logits.shape == (3, 1, 16, 16)
    all4, _ = model.decode(feats, index, coords=coords, labels=labels)
    assert torch.allclose(all4[:, :1], logits) and model.upsample(all4).shape == (3, 4, 32, 32)


def test_full_resolution_decoder_draws_masks_at_the_image_side():
    model = tiny_sam(mask_upscale=8)  # stride 8: one more 2× step, with the encoder's stride-1 stem as its skip
    feats = model.encode(torch.rand(2, 3, 32, 32))
    assert [f.shape[-1] for f in feats.high_res] == [8, 16, 32]  # coarsest first, as the decoder adds them
    index = torch.tensor([0, 1])
    coords, labels = torch.rand(2, 1, 2) * 32, torch.ones(2, 1, dtype=torch.long)
    logits, _ = model.decode(feats, index, coords=coords, labels=labels, multimask=True)
    assert model.mask_size == 32 and logits.shape == (2, 3, 32, 32)
    assert torch.equal(model.upsample(logits), logits)
    again, _ = model.decode(feats, index, coords=coords, labels=labels, mask_input=logits[:, :1], multimask=False)
    plain, _ = model.decode(feats, index, coords=coords, labels=labels, multimask=False)
    assert again.shape == (2, 1, 32, 32) and not torch.allclose(again, plain)  # the mask prompt is read
    image = torch.rand(1, 3, 32, 32)
    edited = image.clone()
    edited[..., 5, 7] += 0.5  # one pixel: the stem carries it to the masks at full resolution
    a, _ = model.decode(model.encode(image), torch.tensor([0]), coords=coords[:1], labels=labels[:1])
    b, _ = model.decode(model.encode(edited), torch.tensor([0]), coords=coords[:1], labels=labels[:1])
    assert (a - b).abs()[..., 5, 7].max() > (a - b).abs()[..., 25, 25].max()
    sam_like = tiny_sam()  # SAM's 4×: no stem, logits at half the side here
    assert sam_like.mask_size == 16 and not any(n.startswith("image_encoder.stem") for n in sam_like.state_dict())


def test_full_resolution_step_blends_neighbouring_cells():
    # the step past 4× is bilinear: one changed feature at half resolution reaches the pixels beside its own 2×2
    # block (a 2×2 transposed convolution, as SAM's first two steps, would change exactly those four pixels)
    model = tiny_sam(mask_upscale=8).eval()
    feats = model.encode(torch.rand(1, 3, 32, 32))
    coords, labels = torch.full((1, 1, 2), 16.0), torch.ones(1, 1, dtype=torch.long)
    index = torch.tensor([0])
    a, _ = model.decode(feats, index, coords=coords, labels=labels, multimask=False)
    feats.high_res[1][..., 5, 5] += 1.0  # the map at half the image's side (16×16 here), coarsest first
    b, _ = model.decode(feats, index, coords=coords, labels=labels, multimask=False)
    rows, cols = torch.nonzero((a - b)[0, 0].abs() > 1e-6, as_tuple=True)
    assert rows.min() == 9 and rows.max() == 12 and cols.min() == 9 and cols.max() == 12


def test_focal_and_dice_losses():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    right, wrong = (target * 2 - 1) * 20, (1 - target * 2) * 20
    assert focal_loss(right, target).item() < 1e-6 and dice_loss(right, target).item() < 1e-3
    assert focal_loss(wrong, target).item() > 1.0 and dice_loss(wrong, target).item() > 0.9


def test_full_resolution_loss_scores_the_upsampled_answer():
    model = tiny_sam()
    target = torch.zeros(1, 1, 32, 32)
    target[..., 10:13, 4:28] = 1  # a bar 3 pixels thick: no 16×16 map draws it exactly after upsampling
    pooled = F.adaptive_avg_pool2d(target, 16)
    logits = torch.logit(pooled.clamp(1e-3, 1 - 1e-3)) * 4
    full = mask_losses(model, logits, target)
    assert torch.allclose(full, mask_losses(model, model.upsample(logits), target))
    assert mask_losses(model, logits, pooled).shape == full.shape  # "low": targets pooled to the logits' side
    # the pooled answer is perfect at 16×16 and wrong at the edges once upsampled: only "full" sees that
    assert loss_iou(model, logits, pooled).item() == 1 and loss_iou(model, logits, target).item() < 1


@pytest.mark.parametrize("upscale", [4, 8])
def test_interactive_loss_trains_every_part(upscale):
    model = tiny_sam(rounds=4, every_round_loss=True, mask_upscale=upscale).train()
    batch = MaskBatches(MaskSource("shapes", size=32), batch_size=2, masks_per_image=2)(0)
    loss = model.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    parts = ["image_encoder", "prompt_encoder.point_embeddings", "prompt_encoder.mask_downscaling", "mask_decoder"]
    for name in parts + (["image_encoder.stem", "mask_decoder.upscale_extra"] if upscale == 8 else []):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name)]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_a_quality_head_scores_the_masks_it_sees_and_learns_without_bending_them():
    model = tiny_sam(quality_width=16, mask_upscale=8).train()
    batch = MaskBatches(MaskSource("shapes", size=32), batch_size=2, masks_per_image=2)(0)
    model.loss(batch).backward()
    head = [p.grad for n, p in model.named_parameters() if n.startswith("quality.")]
    assert head and all(g is not None and g.abs().sum() > 0 for g in head)  # the head learns from the IoU loss
    unused = model.mask_decoder.iou_head.parameters()  # the IoU token's head, now unused, learns nothing
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in unused)
    model.eval()
    features = model.encode(torch.rand(1, 3, 32, 32))
    logits, iou = model.decode(features, torch.tensor([0]), coords=torch.tensor([[[16.0, 16.0]]]),
                               labels=torch.ones(1, 1, dtype=torch.long), multimask=True)  # fmt: skip
    assert iou.shape == (1, 3) and ((iou >= 0) & (iou <= 1)).all()
    again = model.quality(features.select(torch.tensor([0])), -logits)  # another mask, another score
    assert not torch.allclose(again, iou)


def test_init_adds_a_quality_head_to_a_model_trained_without_one():
    plain = tiny_sam(mask_upscale=8)
    scored = tiny_sam(mask_upscale=8, quality_width=16)
    fresh = {k: v.clone() for k, v in scored.state_dict().items() if k.startswith("quality.")}
    scored.init_from(plain)
    for k, v in plain.state_dict().items():
        assert torch.equal(scored.state_dict()[k], v)
    assert all(torch.equal(scored.state_dict()[k], v) for k, v in fresh.items())


def test_sampled_round_loss_is_cheaper_but_still_reaches_the_mask_prompt():
    model = tiny_sam(rounds=8).train()
    batch = MaskBatches(MaskSource("shapes", size=32), batch_size=2, masks_per_image=2)(1)
    for seed in range(20):  # some draw picks a later round: the mask prompt path gets a gradient
        torch.manual_seed(seed)
        model.zero_grad()
        model.loss(batch).backward()
        grad = model.prompt_encoder.mask_downscaling[0].weight.grad
        if grad is not None and grad.abs().sum() > 0:
            return
    pytest.fail("no later round was trained in 20 draws")


def test_distractor_clicks_are_negative_and_off_both_the_answer_and_the_target():
    gt = torch.zeros(64, 16, 16, dtype=torch.bool)
    gt[:, 4:10, 4:10] = True
    answer = gt.clone()
    answer[:, 4:10, 10:12] = True  # spills two columns to the right
    torch.manual_seed(0)
    plain, plain_label = session_click(answer, gt, 0.0)  # in the error region: the spill, so a negative click
    assert (plain_label == 0).all() and ((plain[:, 0] >= 10) & (plain[:, 0] < 12)).all()
    far, far_label = session_click(answer, gt, 1.0)
    x, y = far[:, 0].long(), far[:, 1].long()
    rows = torch.arange(64)
    assert (far_label == 0).all() and not (gt[rows, y, x] | answer[rows, y, x]).any()
    some, _ = session_click(answer, gt, 0.5)
    assert 0 < (some != plain).any(dim=1).sum() < 64  # about half the clicks moved off the spill


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"image_size": 36}, "multiple of the encoder stride 8"),
        ({"stage_channels": "16"}, "at least two"),
        ({"box_prob": 1.5}, "box_prob"),
        ({"distractor_prob": -0.1}, "distractor_prob"),
        ({"rounds": 0}, "rounds"),
        ({"loss_resolution": "half"}, "choose full or low"),
        ({"mask_upscale": 2}, "power of 2 from 4 to the encoder stride 8"),
        ({"mask_upscale": 6}, "power of 2"),
        ({"mask_upscale": 16}, "power of 2 from 4 to the encoder stride 8"),
    ],
)
def test_bad_config(bad, needle):
    with pytest.raises(GenlabError, match=needle):
        SamModel(SamConfig(**bad))


def test_sample_points_to_the_predictor():
    with pytest.raises(GenlabError, match="SegmentPredictor"):
        tiny_sam().sample(1)


@pytest.mark.slow
def test_interrupted_and_resumed_segment_run_ends_with_identical_weights(tmp_path):
    def setup(out, seed_model=0):
        torch.manual_seed(seed_model)
        model = SamModel(SamConfig(**TINY_SAM))
        cfg = TrainConfig(steps=6, batch_size=2, lr=1e-3, warmup=1, eval_every=1000, ckpt_every=1000, log_every=1)
        return model, cfg, MaskBatches(MaskSource("shapes", size=32), batch_size=2, masks_per_image=2)

    model, cfg, batches = setup(tmp_path / "a")
    Trainer(model, cfg, batches=batches, out_dir=tmp_path / "a", quiet=True).fit()
    model_b, cfg_b, batches_b = setup(tmp_path / "b")
    trainer = Trainer(model_b, cfg_b, batches=None, out_dir=tmp_path / "b", quiet=True)

    def interrupting(i):
        if i == 2:
            trainer._interrupted = True
        return batches_b(i)

    trainer.batches = interrupting
    assert trainer.fit().step == 3
    model_c, cfg_c, batches_c = setup(tmp_path / "b", seed_model=7)
    torch.manual_seed(999)  # the random prompts of the loss must come from the checkpoint's RNG state
    assert Trainer(model_c, cfg_c, batches=batches_c, out_dir=tmp_path / "b", quiet=True).fit(resume=True).step == 6
    for (name, a), b in zip(model.state_dict().items(), model_c.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").open()]
    assert steps == list(range(1, 7))
