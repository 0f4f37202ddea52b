"""The pictures of 'visionlab show': each file is written, small and not blank, and shows what it says it shows
(attention and rollout rows sum to 1, the forward process moves away from x_0 as t grows, ...)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import visionlab as vl
from visionlab.cli import main
from visionlab.components.attention import attention_rollout, position_similarity
from visionlab.components.features import oriented_keypoints
from visionlab.data.images import load_image
from visionlab.util.errors import ConfigError, DataError

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


TINY_VIVIT = dict(preset="tiny", frames=4, image_size=16, patch_size=8, dim=16, depth=2, num_heads=2, mlp_dim=32,
                  epochs=1, batch_size=64, quiet=True)


@pytest.mark.parametrize("vivit_model", [2, 1])
def test_attention_picture_of_a_vivit_run(vivit_model, tmp_path):
    run = vl.train("vivit", data="moving-digits", vivit_model=vivit_model, out=str(tmp_path), name="v",
                   **TINY_VIVIT)["run_dir"]
    result = vl.attention_maps(run, output=str(tmp_path / "va.png"), index=1)
    looks_like_a_picture(tmp_path / "va.png")
    # 4 frames of 16 x 16, tubelets 2 x 8 x 8: 2 time indices of 2 x 2 patches
    if vivit_model == 2:  # each time index's spatial [CLS] over its 4 patches, the temporal [CLS] over 2 indices
        maps = {"spatial_last": (2, 2, 5, 5), "spatial_rollout": (2, 5, 5), "temporal_last": (2, 3, 3),
                "temporal_rollout": (3, 3)}
    else:  # one [CLS] over all 8 tubelets
        maps = {"last_block": (2, 9, 9), "rollout": (9, 9)}
    for key, shape in maps.items():
        assert tuple(result[key].shape) == shape, key
        assert torch.allclose(result[key].sum(-1), torch.ones(shape[:-1]), atol=1e-5), key


def test_gan_progress_one_frame_per_grid(tmp_path):
    out = tmp_path / "runs"
    assert main(["train", "gan", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "16", "--eval-every", "2",
                 "--steps", "6", "--sample-every", "2", "--out", str(out), "--name", "g", "--quiet"]) == 0
    run = out / "adversarial" / "g"
    gif = Image.open(run / "samples.gif")  # written by the trainer: grids at steps 2 and 4, then the final one
    assert gif.n_frames == 3
    for k in range(gif.n_frames):
        gif.seek(k)
        assert np.asarray(gif.convert("L")).std() > 0, f"frame {k} is blank"
    result = vl.gan_progress(run, output=str(tmp_path / "gp.png"))
    assert result["steps"] == [2, 4, 6]
    looks_like_a_picture(tmp_path / "gp.png")


@pytest.mark.parametrize("sampler", ["random", "evos"])
def test_fit_records_the_selection_every_k_steps(sampler, tmp_path):
    # chunk 256 of 1,024 pixels: the step runs in several chunks, and the record's full forward pass too
    summary = vl.fit_run("camera", size="32", model="siren", width=32, depth=1, steps=12, sampler=sampler,
                         ratio=0.25, scheduler="linear", record_selection=4, eval_every=6, chunk=256,
                         out=str(tmp_path), name="f", quiet=True)
    run = summary["run_dir"]
    result = vl.selection_masks(run, output=str(tmp_path / "sel.png"))
    assert result["steps"] == [0, 4, 8]
    for step, fraction, ratio in zip(result["steps"], result["fractions"], result["ratios"]):
        expected = 1.0 if sampler == "evos" and step == 0 else math.floor(ratio * 32 * 32 + 1e-9) / (32 * 32)
        assert fraction == pytest.approx(expected), (step, fraction, ratio)  # EVOS's step 0: every pixel (fitness)
    assert result["ratios"][0] < result["ratios"][-1]  # the linear schedule grows r_t
    assert all(e > 0 for e in result["mean_error"]) and result["mean_error"][-1] < result["mean_error"][0]
    looks_like_a_picture(tmp_path / "sel.png")
    for name in ("selection.gif", "errors.gif"):
        gif = Image.open(f"{run}/{name}")
        assert gif.n_frames == 3, name
        gif.seek(2)
        assert np.asarray(gif.convert("L")).std() > 0, name


def test_record_selection_is_refused_for_sound_and_negative(tmp_path):
    with pytest.raises(ConfigError):
        vl.fit("camera", record_selection=-1, out=str(tmp_path), quiet=True)
    with pytest.raises(DataError):
        vl.fit("chirp", seconds=0.05, steps=2, record_selection=1, out=str(tmp_path), quiet=True)
    assert not (tmp_path / "fit").exists()  # refused before any run folder was made


def test_recording_leaves_the_fit_unchanged_and_survives_a_resume(tmp_path):
    options = dict(size="32", model="siren", width=32, depth=1, steps=12, sampler="evos", ratio=0.25,
                   scheduler="step", checkpoint_every=4, eval_every=4, out=str(tmp_path), quiet=True)
    plain = vl.fit_run("camera", name="plain", **options)
    stopped = vl.fit_run("camera", name="rec", record_selection=2, callbacks=[lambda t: t.step == 6 and
                                                                            t.request_stop()], **options)
    assert stopped["status"] == "interrupted"
    resumed = vl.fit_run(resume=stopped["run_dir"], quiet=True)
    a = load_file(f"{plain['run_dir']}/model.safetensors")
    b = load_file(f"{resumed['run_dir']}/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the records read the network, they do not change the fit
    assert vl.selection_masks(resumed["run_dir"])["steps"] == [0, 2, 4, 6, 8, 10]
    assert Image.open(f"{resumed['run_dir']}/selection.gif").n_frames == 6
