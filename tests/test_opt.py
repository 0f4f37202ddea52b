"""The options: each command's --help shows its own config's defaults, configs are built once (defaults, then a
preset or recipe, then the options given), and the options several commands share are declared once."""

import dataclasses

import numpy as np
import pytest

import visionlab as vl
from visionlab import opt
from visionlab.cli import CONFIG_COMMANDS, TRAIN_FAMILIES, build_parser, main, parse
from visionlab.data.images import save_image
from visionlab.manager import DIFFUSE_RECIPES, build_config
from visionlab.models.ddpm_unet import DiffusionUNet
from visionlab.models.unet import unet_config
from visionlab.models.vit import vit_config
from visionlab.models.vivit import vivit_config
from visionlab.opt.flags import given_options
from visionlab.trainer.diffuse import build_network
from visionlab.util.errors import ConfigError


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100000")  # argparse then wraps no help text (it would break "sub-folders")


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def shown_defaults_match(text: str, cls, skip=()) -> None:
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = f.name if f.metadata.get("positional") else "--" + f.name.replace("_", "-")
        assert flag in text, f"{flag} missing"
        words = " ".join(opt.help_text(cls, f).split())
        if f.default is None or isinstance(f.default, bool):  # no default to show: flags, "(default: ...)" in words
            assert words in text, f"{flag}: help text missing"
        else:
            assert f"{words} (default: {f.default})" in text, f"{flag}: not its config's default {f.default!r}"


@pytest.mark.parametrize("family", list(TRAIN_FAMILIES))
def test_every_train_family_shows_its_own_config_and_defaults(family, capsys):
    cls = TRAIN_FAMILIES[family][0]
    text = help_text(capsys, "train", family)
    shown_defaults_match(text, cls, skip=("model",))  # the family is the model
    assert "--recipe" in text and "--resume" in text
    others = {c for c, _, _ in TRAIN_FAMILIES.values()} - {cls}
    foreign = {f.name for c in others for f in dataclasses.fields(c)} - {f.name for f in dataclasses.fields(cls)}
    for name in foreign:
        assert f"--{name.replace('_', '-')} " not in text, f"{name} of another family in 'train {family}'"


def test_train_ddpm_help_shows_the_diffusion_defaults_not_the_vits(capsys):
    text = help_text(capsys, "train", "ddpm")
    assert "AdamW weight decay (default: 0.0)" in text and "(default: 0.05)" not in text
    assert "network preset (default: digits for 16x16 grey images, else tiny32" in text
    assert "Ti, S, B, L, H" not in text
    assert "AdamW weight decay (default: 0.05)" in help_text(capsys, "train", "vit")


@pytest.mark.parametrize("command", list(CONFIG_COMMANDS))
def test_every_command_shows_its_config_defaults(command, capsys):
    shown_defaults_match(help_text(capsys, command), CONFIG_COMMANDS[command][0])


@pytest.mark.parametrize("argv, family", [
    (["train", "--data", "digits"], "vit"),
    (["train"], "vit"),
    (["train", "--recipe", "digits-ddpm", "--steps", "5"], "ddpm"),
    (["train", "--recipe", "shapes-unet"], "unet"),
    (["train", "--recipe", "digits-wgan-gp"], "gan"),
    (["train", "dit", "--recipe", "digits-dit"], "dit"),
])
def test_train_without_a_model_takes_the_recipes(argv, family):
    args = parse(build_parser(), argv)
    assert args.family == family and args.config is TRAIN_FAMILIES[family][0]


def test_a_flag_of_another_family_is_refused_by_name():
    with pytest.raises(ConfigError, match="--epochs: not an option of 'visionlab train ddpm'"):
        parse(build_parser(), ["train", "ddpm", "--epochs", "3"])
    with pytest.raises(ConfigError, match="unknown recipe 'nope'"):
        parse(build_parser(), ["train", "--recipe", "nope"])


def test_build_config_defaults_then_recipe_then_options():
    config = build_config(opt.DiffuseConfig, "digits-dit", steps=5)
    assert config.steps == 5 and config.min_snr == DIFFUSE_RECIPES["digits-dit"]["min_snr"]
    assert config.timesteps == opt.DiffuseConfig().timesteps
    assert build_config(opt.FitConfig) == opt.FitConfig()
    # an earlier run's options: keys this version does not know are dropped; an unknown option is refused
    assert build_config(opt.FitConfig, {"steps": 7, "retired_option": 1}).steps == 7
    with pytest.raises(ConfigError, match="unknown option"):
        build_config(opt.FitConfig, steps=7, retired_option=1)
    with pytest.raises(ConfigError, match="unknown fit preset 'nope'"):
        build_config(opt.FitConfig, "nope")


@pytest.mark.parametrize("name", ["device", "threads", "quiet", "amp", "grad_clip", "out", "name", "no_tensorboard"])
def test_a_shared_option_is_the_same_everywhere(name):
    configs = [getattr(opt, n) for n in opt.__all__ if n.endswith("Config")]
    found = {(f.default, f.metadata["help"], f.metadata["choices"]) for c in configs for f in dataclasses.fields(c)
             if f.name == name and not issubclass(c, opt.SampleConfig)}  # sample's out is a file, not a run folder
    assert len(found) == 1, found


def test_run_folder_help_names_the_commands_folder(capsys):
    assert "this run goes to OUT/diffuse/NAME" in help_text(capsys, "train", "dit")
    assert "(default: DATA-gan-LOSS, with -cond when conditional)" in help_text(capsys, "train", "gan")
    text = help_text(capsys, "fit")
    assert text.index("--precision") < text.index("--device") < text.index("--quiet")  # own options first


def test_a_folder_fit_with_a_bad_ratio_is_refused_before_its_table_folder(tmp_path, capsys):
    (tmp_path / "album").mkdir()
    for k in range(2):
        save_image(tmp_path / "album" / f"{k}.png", np.random.default_rng(k).random((16, 16, 3)))
    out = tmp_path / "runs"
    assert main(["fit", str(tmp_path / "album"), "--preset", "tiny", "--ratio", "2", "--quiet", "--out", str(out)]) == 2
    assert "ratio must be in (0, 1], got 2.0" in capsys.readouterr().err
    assert not out.exists()  # nothing left that would refuse the corrected rerun


def optional_choices() -> list[tuple[str, list[str], str]]:
    """(command words, flag, field name) of every option whose choices hold None (the default: decide for me)."""
    found = []
    for command, (cls, _, _) in CONFIG_COMMANDS.items():
        found += [([command], f) for f in dataclasses.fields(cls) if None in (f.metadata.get("choices") or ())]
    for family, (cls, _, _) in TRAIN_FAMILIES.items():
        found += [(["train", family], f) for f in dataclasses.fields(cls) if None in (f.metadata.get("choices") or ())]
    return [(words, "--" + f.name.replace("_", "-"), f.name) for words, f in found]


def test_optional_choices_are_found():
    names = {name for _, _, name in optional_choices()}
    assert {"kind", "pool", "variance", "d_norm"} <= names


@pytest.mark.parametrize("words, flag, name", optional_choices())
def test_a_none_choice_is_typed_none_and_shown_as_none(words, flag, name, capsys):
    text = help_text(capsys, *words)
    assert "None," not in text and "{None" not in text  # never shown as a choice that argparse then refuses
    args = parse(build_parser(), [*words, flag, "none"])  # 'none' is taken ...
    given = given_options(args, args.config)
    field = next(f for f in dataclasses.fields(args.config) if f.name == name)
    # ... as None (the default), or as the choice 'none' where that is a value of its own (d_norm: no normalisation)
    assert given[name] == ("none" if "none" in field.metadata["choices"] else None)


def test_none_overrides_a_recipe_value():
    args = parse(build_parser(), ["train", "vit", "--pool", "none"])
    assert given_options(args, args.config) == {"pool": None}
    assert build_config(opt.ClassifyConfig, {"pool": "mean"}, **given_options(args, args.config)).pool is None
    with pytest.raises(SystemExit):
        parse(build_parser(), ["train", "vit", "--pool", "None"])  # the Python spelling is not a choice


def test_the_models_defaults_are_the_command_lines():
    """ViT() is the model of 'visionlab train vit' (not ViT-B's 85.8 M parameters), and so on for every family."""
    assert vl.ViT().config == vit_config(opt.ClassifyConfig().preset)
    assert vl.ViViT().config == vivit_config(opt.ClassifyConfig().preset)
    assert vl.UNet().config == unet_config(opt.SegmentConfig().preset)
    for model, cls in (("dit", vl.DiT), ("ddpm", DiffusionUNet)):  # the network of the default data, the digits
        config = opt.DiffuseConfig(model=model)
        network, _ = build_network(config, (1, 16, 16), 10)
        assert cls().config == network.config, model
    assert sum(p.numel() for p in vl.ViT().parameters()) < 100_000
    assert {"ViT", "ViViT", "DiT", "UNet"} <= set(vl.__all__)
