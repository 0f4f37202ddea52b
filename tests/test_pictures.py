"""The pictures of 'visionlab show': each file is written, small and not blank, and shows what it says it shows
(attention and rollout rows sum to 1, the forward process moves away from x_0 as t grows, ...)."""

import numpy as np
import pytest
import torch
from PIL import Image

import visionlab as vl
from visionlab.cli import main
from visionlab.components.attention import attention_rollout, position_similarity
from visionlab.components.features import oriented_keypoints
from visionlab.data.images import load_image

TINY_VIT = dict(preset="tiny", image_size=8, patch_size=2, pool="cls", epochs=1, batch_size=64, quiet=True)
TINY_UNET = ["--base-channels", "8", "--timesteps", "20", "--batch-size", "16", "--sample-steps", "4",
             "--eval-every", "2"]


def looks_like_a_picture(path, max_kb=150):
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    assert pixels.std() > 0, f"{path} is blank"
    assert min(pixels.shape) >= 60, f"{path} is too small to read: {pixels.shape}"
    assert path.stat().st_size < max_kb * 1024, f"{path} is over {max_kb} KB"


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return vl.train("vit", data="digits", out=str(out), name="vit", **TINY_VIT)["run_dir"]


def test_rollout_rows_sum_to_one_and_one_block_is_half_identity():
    maps = [torch.rand(2, 3, 5, 5).softmax(-1) for _ in range(3)]  # (B, h, L, L)
    rollout = attention_rollout(maps)
    assert rollout.shape == (2, 5, 5)
    assert torch.allclose(rollout.sum(-1), torch.ones(2, 5), atol=1e-5)
    one = attention_rollout(maps[:1])
    assert torch.allclose(one, 0.5 * maps[0].mean(1) + 0.5 * torch.eye(5), atol=1e-6)  # rows already sum to 1


def test_position_similarity_is_cosine():
    sim = position_similarity(torch.randn(6, 4))
    assert torch.allclose(sim.diagonal(), torch.ones(6), atol=1e-5) and sim.abs().max() <= 1 + 1e-5


def test_attention_picture_of_a_vit_run(vit_run, tmp_path):
    result = vl.attention_maps(vit_run, output=str(tmp_path / "a.png"), index=2)
    looks_like_a_picture(tmp_path / "a.png")
    last, rollout = result["last_block"], result["rollout"]
    assert last.shape == (4, 17, 17) and rollout.shape == (17, 17)  # tiny: 4 heads; 4 x 4 patches + [CLS]
    assert torch.allclose(last.sum(-1), torch.ones(4, 17), atol=1e-5)
    assert torch.allclose(rollout.sum(-1), torch.ones(17), atol=1e-5)


def test_positions_picture_of_a_vit_run(vit_run, tmp_path):
    result = vl.position_similarity(vit_run, output=str(tmp_path / "p.png"))
    looks_like_a_picture(tmp_path / "p.png")
    assert result["similarity"].shape == (16, 16)


def test_patches_and_tubelets(tmp_path):
    result = vl.patch_picture("camera", patch_size=64, output=str(tmp_path / "patches.png"))
    assert result["tokens"] == 16
    looks_like_a_picture(tmp_path / "patches.png")
    result = vl.tubelet_picture(output=str(tmp_path / "tubelets.png"), frames=4, tubelet=(2, 8, 8), size=16)
    assert result["tokens"] == 2 * 2 * 2
    looks_like_a_picture(tmp_path / "tubelets.png")


def test_forward_process_noise_rises_with_t(tmp_path):
    result = vl.forward_process("digits", output=str(tmp_path / "f.png"), timesteps=200, show=6)
    looks_like_a_picture(tmp_path / "f.png")
    distance = result["distance"]
    assert result["timesteps"][0] == 0 and distance[0] < 0.1 * distance[-1]  # t = 0: one small step of noise
    assert all(b > a for a, b in zip(distance, distance[1:])), distance


def test_reverse_trajectory_of_a_diffusion_run(tmp_path):
    out = tmp_path / "runs"
    assert main(["train", "ddpm", *TINY_UNET, "--steps", "2", "--sample-every", "0", "--out", str(out),
                 "--name", "d", "--quiet"]) == 0
    result = vl.reverse_trajectory(out / "diffuse" / "d", num=2, steps=5, show=3, output=str(tmp_path / "r.png"))
    looks_like_a_picture(tmp_path / "r.png")
    assert result["timesteps"][-1] == "x_0" and len(result["timesteps"]) == 4


def test_show_command_writes_the_file_and_refuses_bad_input(vit_run, tmp_path, capsys):
    assert main(["show", "patches", "astronaut", "--patch-size", "64", "--output", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file() and "picture:" in capsys.readouterr().out
    assert main(["show", "patches", "astronaut", "--patch-size", "100"]) == 2  # does not divide 256
    assert main(["show", "attention"]) == 2  # a run is needed
    assert main(["show", "attention", str(tmp_path)]) == 2  # not a run
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("visionlab show: error:") for line in err)


def test_keypoints_drawn_match_the_detectors_counts(tmp_path):
    result = vl.keypoint_picture("camera", size=128, output=str(tmp_path / "k.png"))
    looks_like_a_picture(tmp_path / "k.png")
    grey = load_image("camera", size=128).values.numpy().mean(-1)
    for name in ("sift", "surf"):
        assert result["counts"][name] == len(oriented_keypoints(grey, name)[0]) > 0


def test_hog_picture(tmp_path):
    assert vl.hog_picture("camera", output=str(tmp_path / "h.png"))["features"] > 0
    looks_like_a_picture(tmp_path / "h.png")
