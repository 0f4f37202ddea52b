"""The segment task: the shapes data, IoU / Dice, the U-Net learning a tiny task end to end, folders of images and
masks and their errors."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import visionlab.api as api
from visionlab.cli import main
from visionlab.components.metrics import segmentation_confusion, segmentation_scores
from visionlab.data.images import save_image
from visionlab.data.shapes import mask_folder, shapes_data, shapes_images
from visionlab.util.errors import DataError


def test_shapes_are_deterministic_and_masks_match_the_pixels():
    a, ma = shapes_images(12, size=32, seed=5)
    b, mb = shapes_images(12, size=32, seed=5)
    c, _ = shapes_images(12, size=32, seed=6)
    assert np.array_equal(a, b) and np.array_equal(ma, mb) and not np.array_equal(a, c)
    assert a.shape == (12, 32, 32, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert set(np.unique(ma)) <= {0, 1, 2, 3} and all((m > 0).any() for m in ma)  # every image has a shape
    clean, masks = shapes_images(4, size=32, noise=0.0, seed=1)
    for image, mask in zip(clean, masks):  # without noise, the background is one colour and no shape pixel is it
        background = image[mask == 0]
        assert np.allclose(background, background[0])
    data = shapes_data(train=10, test=5, size=16, kinds=("circle", "triangle"), seed=0)
    assert data.class_names == ["background", "circle", "triangle"] and data.train_x.shape == (10, 3, 16, 16)
    assert not any(torch.equal(x, y) for x in data.train_x for y in data.test_x)  # disjoint splits


def test_iou_and_dice_by_hand():
    truth = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0], [2, 2, 0, 0]])
    pred = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [2, 2, 2, 0], [0, 2, 0, 0]])
    confusion = segmentation_confusion(pred, truth, 4)
    assert confusion.sum() == 16 and confusion[0, 0] == 6
    s = segmentation_scores(confusion)
    # class 0: TP 6, FP 1, FN 2 -> IoU 6/9; class 1: TP 4, FP 1 -> 4/5; class 2: TP 3, FP 1, FN 1 -> 3/5; class 3 absent
    assert s["iou"][:3] == pytest.approx([6 / 9, 4 / 5, 3 / 5]) and np.isnan(s["iou"][3])
    assert s["dice"][:3] == pytest.approx([12 / 15, 8 / 9, 6 / 8])
    assert s["mean_iou"] == pytest.approx((6 / 9 + 4 / 5 + 3 / 5) / 3) and s["pixel_accuracy"] == pytest.approx(13 / 16)
    with pytest.raises(DataError, match="must lie in"):
        segmentation_confusion(pred, truth, 2)


def test_unet_learns_a_tiny_shapes_task(tmp_path):
    summary = api.segment("shapes", preset="tiny", epochs=5, train_images=256, test_images=64, batch_size=16,
                          lr=1e-2, max_shapes=2, shape_kinds="rectangle", dice_weight=1.0, out=str(tmp_path),
                          name="tiny", quiet=True)
    m = summary["metrics"]
    assert m["mean_iou"] > m["chance_mean_iou"] + 0.2 and m["mean_iou"] > 0.6  # chance about 0.41
    assert m["mean_dice"] >= m["mean_iou"] and set(m["iou"]) == {"background", "rectangle"}
    run = summary["run_dir"]
    for name in ("config.yaml", "metrics.jsonl", "metrics.json", "summary.json", "checkpoint.pt", "model.safetensors",
                 "best.safetensors", "model.json", "predictions.png", "curves.png"):
        assert os.path.isfile(os.path.join(run, name)), name
    log = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    assert len(log) == 5 and all("val_mean_iou" in r and "mean_iou" not in r for r in log)  # once per epoch, val
    # 256 training images: 26 held out for validation; the best epoch is chosen there, the test split scored at the end.
    assert m["val_images"] == 26 and m["train_images"] == 230 and m["test_images"] == 64
    best = max(range(5), key=lambda i: (log[i]["val_mean_iou"], -i))
    assert m["best_epoch"] == best + 1 and m["best_val_mean_iou"] == log[best]["val_mean_iou"]
    assert 0 < m["best_test_mean_iou"] <= 1
    assert np.array(json.load(open(os.path.join(run, "metrics.json")))["confusion"]).sum() == 64 * 32 * 32
    assert main(["sample", run]) == 2  # a segmentation run is no diffusion model


def write_pairs(root, n=6, size=12):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[rng.integers(0, 6):, : rng.integers(4, size)] = 1
        save_image(root / "images" / f"im{i}.png", np.stack([mask * 0.8 + 0.1] * 3, -1))
        Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
    return root


def test_mask_folders_are_read_and_checked(tmp_path, capsys):
    data = mask_folder(write_pairs(tmp_path / "ok"), test_size=0.34)
    assert data.train_x.shape == (4, 3, 12, 12) and data.test_y.shape == (2, 12, 12)
    assert data.class_names == ["0", "1"] and data.train_y.dtype == torch.int64
    assert mask_folder(tmp_path / "ok", image_size=8).train_x.shape[-1] == 8
    summary = api.segment(str(tmp_path / "ok"), preset="tiny", epochs=1, batch_size=4, out=str(tmp_path / "runs"),
                          quiet=True)
    assert summary["status"] == "finished" and 0 <= summary["metrics"]["mean_iou"] <= 1
    broken = write_pairs(tmp_path / "broken")
    os.remove(broken / "masks" / "im3.png")
    (tmp_path / "classes").mkdir()
    write_pairs(tmp_path / "classes" / "d")
    (tmp_path / "classes" / "d" / "classes.txt").write_text("only-background\n")
    for folder, message in ((broken, "image(s) without a mask"), (tmp_path / "nowhere", "no such data set"),
                            (tmp_path / "classes" / "d", "outside the 1 classes")):
        assert main(["train", "unet", "--data", str(folder), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main(["train", "unet", "--preset", "huge", "--quiet", "--out", str(tmp_path / "runs"),
                 "--train-images", "4", "--test-images", "2"]) == 2
    assert "unknown U-Net preset 'huge'" in capsys.readouterr().err
