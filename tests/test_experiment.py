"""Experiments: many runs, one table; finished runs are skipped and an interrupted one continues exactly."""

import dataclasses
import json

import numpy as np
import pytest
from safetensors.torch import load_file

import visionlab as vl
from visionlab.cli import main
from visionlab.manager import EVOS_TABLE1_ROWS, SYMPOWER_TABLE1_ROWS, TABLE_IMAGES, experiment_plan
from visionlab.opt import ClassifyConfig, FeaturesConfig, FitConfig
from visionlab.trainer import fit as fit_task
from visionlab.trainer.experiment import Cell, run_experiment
from visionlab.util.errors import ConfigError

FIT_TABLE = {"kind": "fit", "columns": [20, 40]}


def tiny_cells(**overrides):
    base = dict(size="24", width=16, depth=1, steps=40, eval_every=10, checkpoint_every=20, lr=1e-3, ratio=0.5)
    return [Cell(row=row, item=image, task="fit", config=FitConfig(image=image, sampler=sampler,
                                                                 **{**base, **overrides}))
            for row, sampler in (("Standard", "full"), ("EVOS", "evos")) for image in ("camera", "coffee")]


def test_fit_table_is_the_mean_over_images_and_a_rerun_skips_finished_cells(tmp_path):
    result = run_experiment("t", tiny_cells(), out=tmp_path, table=FIT_TABLE, options={"steps": 40}, quiet=True)
    folder = tmp_path / "experiment" / "t"
    assert result["status"] == "finished" and (folder / "table.md").read_text() == result["markdown"]
    lines = result["markdown"].splitlines()
    assert lines[0] == "| strategy | 20 steps | 40 steps | time (s) |" and len(lines) == 4
    evos = next(r for r in result["rows"] if r["row"] == "EVOS")
    logs = [[json.loads(x) for x in open(folder / "fit" / f"EVOS-{image}" / "metrics.jsonl")]
            for image in ("camera", "coffee")]
    assert evos["columns"]["40"]["psnr"] == pytest.approx(np.mean([log[-1]["psnr"] for log in logs]))
    assert evos["columns"]["20"]["ssim"] == pytest.approx(np.mean([log[1]["ssim"] for log in logs]))
    cells_log = (folder / "cells.jsonl").read_text()
    again = run_experiment("t", tiny_cells(), out=tmp_path, table=FIT_TABLE, options={"steps": 40}, quiet=True)
    assert again["markdown"] == result["markdown"] and (folder / "cells.jsonl").read_text() == cells_log
    with pytest.raises(ConfigError, match="with other options"):
        run_experiment("t", tiny_cells(), out=tmp_path, table=FIT_TABLE, options={"steps": 80}, quiet=True)


def test_an_interrupted_cell_continues_from_its_checkpoint_exactly(tmp_path):
    straight = run_experiment("a", tiny_cells(), out=tmp_path, table=FIT_TABLE, options={}, quiet=True)
    cells = tiny_cells()
    folder = tmp_path / "experiment" / "b"
    # The third cell was stopped at step 20 (as by Ctrl-C): its run folder holds a checkpoint, cells.jsonl two lines.
    run_experiment("b", cells[:2], out=tmp_path, table=FIT_TABLE, options={}, quiet=True)
    (folder / "experiment.yaml").unlink()  # the same folder, now with the full list of cells
    stopped = fit_task.build_fit(dataclasses.replace(cells[2].config, out=str(folder), name=cells[2].key,
                                                     quiet=True))
    stopped.callbacks.append(lambda t: t.step == 20 and t.request_stop())
    assert stopped.train()["status"] == "interrupted"
    resumed = run_experiment("b", cells, out=tmp_path, table=FIT_TABLE, options={}, quiet=True)
    assert resumed["rows"][1]["columns"] == straight["rows"][1]["columns"]
    for cell in cells:
        a = load_file(tmp_path / "experiment" / "a" / "fit" / cell.key / "model.safetensors")
        b = load_file(folder / "fit" / cell.key / "model.safetensors")
        assert all((a[k] == b[k]).all() for k in a), cell.key


def test_classify_table_puts_a_vit_beside_hog_and_svm(tmp_path):
    cells = [Cell(row="ViT", item="", task="classify",
                  config=ClassifyConfig(data="digits", preset="tiny", patch_size=2, epochs=1, batch_size=64)),
             Cell(row="HOG + SVM", item="", task="features", config=FeaturesConfig(data="digits"))]
    result = run_experiment("c", cells, out=tmp_path, table={"kind": "classify"}, options={}, quiet=True)
    rows = {r["row"]: r for r in result["rows"]}
    assert rows["HOG + SVM"]["accuracy"] > 0.95 and 0 <= rows["ViT"]["accuracy"] <= 1
    assert rows["ViT"]["parameters"] > 0 and rows["ViT"]["seconds_per_epoch"] > 0
    assert rows["ViT"]["best_epoch"] == 1 and rows["HOG + SVM"]["best_epoch"] is None  # chosen on val, not test
    assert result["markdown"].splitlines()[0].startswith("| model | test accuracy (final) | best epoch on val")


def test_plans_follow_the_papers_tables():
    cells, table = experiment_plan("evos-table1", steps=1000)
    assert len(cells) == len(EVOS_TABLE1_ROWS) * len(TABLE_IMAGES) == 14 * 6
    assert table["columns"] == [200, 400, 1000]  # the paper's 1k, 2k, 5k of 5,000
    row, image, task, options = cells[-1]
    assert (row, image, task) == ("EVOS, step-wise", TABLE_IMAGES[-1], "fit")
    assert options["sampler"] == "evos" and options["ratio"] == 0.2 and options["scheduler"] == "step"
    assert options["cfs_steps"] == 300 and options["size"] == "256x256" and options["eval_every"] == 50
    cells, table = experiment_plan("sympower-table1", images=["a.png"], steps=500, size="64")
    assert len(cells) == len(SYMPOWER_TABLE1_ROWS) and table["columns"] == [50, 100, 300, 500]
    assert {c[3]["transform"] for c in cells} >= {"unit", "zscore", "sympower", "boxcox", "rpp"}
    assert all(c[3]["sampler"] == "full" and c[3]["lr_final"] == 1e-5 for c in cells)
    assert [c[0] for c in experiment_plan("moving-digits")[0]][-1] == "ViT on one frame (control)"
    with pytest.raises(ConfigError, match="multiple of 20"):
        experiment_plan("evos-table1", steps=1010)


def test_experiment_command_refuses_bad_names_and_options(capsys, tmp_path):
    assert main(["experiment", "table9", "--out", str(tmp_path)]) == 2
    assert "unknown experiment 'table9'" in capsys.readouterr().err
    assert main(["experiment", "evos-table1", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "steps must be > 0" in capsys.readouterr().err
    assert main(["experiment", "evos-table1", "--images", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "has no images" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown option"):
        vl.experiment("digits-vit", epochs=3)


def test_shards_split_the_cells_and_a_plain_rerun_gathers_the_table(tmp_path, capsys):
    straight = run_experiment("whole", tiny_cells(), out=tmp_path, table=FIT_TABLE, options={}, quiet=True)
    folder = tmp_path / "experiment" / "split"
    first = run_experiment("split", tiny_cells(), out=tmp_path, table=FIT_TABLE, options={}, quiet=True,
                           shard=(1, 3))
    assert first["status"] == "shard finished" and first["cells_done"] == 2  # cells 1 and 4 of 4
    assert "rerun without --shard" in capsys.readouterr().out
    assert sorted(p.name for p in (folder / "fit").iterdir()) == ["EVOS-coffee", "Standard-camera"]
    second = run_experiment("split", tiny_cells(), out=tmp_path, table=FIT_TABLE, options={}, quiet=True,
                            shard=(2, 3))
    assert second["cells_done"] == 3 and not (folder / "table.md").exists()
    third = run_experiment("split", tiny_cells(), out=tmp_path, table=FIT_TABLE, options={}, quiet=True,
                           shard=(3, 3))  # the last shard finds every cell finished: it writes the table
    assert third["status"] == "finished" and third["markdown"].splitlines()[2:] != []
    gathered = run_experiment("split", tiny_cells(), out=tmp_path, table=FIT_TABLE, options={}, quiet=True)
    assert gathered["status"] == "finished"
    for a, b in zip(gathered["rows"], straight["rows"]):  # the same runs, whichever process ran them
        assert a["columns"] == b["columns"]


@pytest.mark.parametrize("shard", ["0/3", "4/3", "2", "a/b", "1/0"])
def test_a_bad_shard_is_refused_in_one_line(shard, capsys):
    assert main(["experiment", "evos-table1", "--shard", shard]) == 2
    assert "--shard" in capsys.readouterr().err
