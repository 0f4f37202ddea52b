"""`visionlab shapes`: the notes' shape walk-throughs, produced by hooks on the real models."""

import pytest

import visionlab as vl
from visionlab.cli import main


def shape_column(text):
    return [line.split("  ")[0] for line in text.splitlines()]  # each line: the shape, two spaces, what made it


def test_vit_b16_matches_the_notes_line_for_line():
    # Notes: (1, 3, 224, 224) -> conv 16/16 -> (1, 768, 14, 14) -> flatten -> (1, 768, 196) -> transpose ->
    # (1, 196, 768) -> [CLS] -> (1, 197, 768) -> + positional embedding -> (1, 197, 768) -> ... -> (1, 1000)
    text = vl.shapes("vit", image_size=224, patch_size=16)
    assert shape_column(text) == ["(1, 3, 224, 224)", "(1, 768, 14, 14)", "(1, 768, 196)", "(1, 196, 768)",
                                  "(1, 197, 768)", "(1, 197, 768)", "(1, 197, 768)", "(1, 197, 768)", "(1, 768)",
                                  "(1, 1000)"]
    assert "transformer block (x12)" in text


def test_vivit_tubelets_match_the_notes():
    # Notes: (1, 3, 16, 224, 224) -> Conv3d (2, 16, 16) -> (1, 768, 8, 14, 14) -> (1, 768, 1568) -> (1, 1568, 768)
    # -> [CLS] -> (1, 1569, 768) -> + positional embedding (1, 1569, 768)
    text = vl.shapes("vivit", frames=16, tubelet=(2, 16, 16))
    assert shape_column(text)[:6] == ["(1, 3, 16, 224, 224)", "(1, 768, 8, 14, 14)", "(1, 768, 1568)",
                                      "(1, 1568, 768)", "(1, 1569, 768)", "(1, 1569, 768)"]


def test_factorised_encoder_shows_the_temporal_stage():
    text = vl.shapes("vivit", frames=16, tubelet=(2, 16, 16), vivit_model=2)
    assert "(8, 197, 768)" in text and "(1, 9, 768)" in text and "temporal transformer block (x4)" in text


def test_shapes_command_and_its_errors(capsys):
    assert main(["shapes", "vit", "--preset", "Ti", "--image-size", "32", "--patch-size", "8"]) == 0
    assert "(1, 17, 192)" in capsys.readouterr().out
    assert main(["shapes", "vit", "--image-size", "100", "--patch-size", "16"]) == 2
    assert "not divisible by patch_size 16" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["shapes", "resnet"])
