"""The command-line flags of a config: one ``--flag`` per dataclass field (its help text and choices from the field's
metadata, the default shown from the config), and back from the parsed flags to the options given. ``visionlab.cli``
builds every config command's parser with these."""

from __future__ import annotations

import argparse
import dataclasses
from typing import get_type_hints

from visionlab.opt.fields import help_text


def add_options(parser: argparse.ArgumentParser, cls, *, positional_optional: bool = False, skip=()) -> None:
    """Add one flag per field of the dataclass ``cls`` (except the names in ``skip``). Defaults are left unset (None)
    so that the flags given can be told apart from the defaults (see :func:`given_options`); the help shows the
    config's own default."""
    hints = get_type_hints(cls)
    # The command's own options first, then the shared ones (the keyword-only mixins of visionlab.opt.fields).
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.kw_only):
        if f.name in skip:
            continue
        meta = {**f.metadata, "help": help_text(cls, f)}
        # argparse formats help text with %: a plain "10 %" would break --help, so every % is written as %%.
        meta["help"] = meta["help"].replace("%", "%%")
        kind = _base_type(hints[f.name])
        default_text = "" if f.default is None else f" (default: {f.default})"
        if meta.get("positional"):
            parser.add_argument(f.name, nargs="?" if positional_optional else None, default=None,
                                choices=meta.get("choices"), help=meta["help"] + default_text)
            continue
        flags = [f"--{f.name.replace('_', '-')}"]
        if kind is bool:
            parser.add_argument(*flags, dest=f.name, action="store_true", default=None, help=meta["help"])
        elif getattr(kind, "__origin__", None) is tuple:  # tuple[int, int, int] -> three values after the flag
            parser.add_argument(*flags, dest=f.name, type=kind.__args__[0], nargs=len(kind.__args__), default=None,
                                metavar=f.name.upper(), help=meta["help"] + default_text)
        else:
            choices = _shown_choices(meta.get("choices"))
            parser.add_argument(*flags, dest=f.name, type=kind, default=None, choices=choices,
                                metavar=f.name.upper() if not choices else None, help=meta["help"] + default_text)


def _shown_choices(choices: tuple | None) -> tuple | None:
    """A field's choices as the command line takes them: None (the default, 'decide for me') is typed 'none', unless
    'none' is already a choice of its own (then None is simply the flag left out)."""
    if not choices or None not in choices:
        return choices
    rest = tuple(c for c in choices if c is not None)
    return rest if "none" in rest else ("none", *rest)


def given_options(args: argparse.Namespace, cls) -> dict:
    """The fields of ``cls`` given explicitly on the command line ('none' of a choice that holds None: None)."""
    given = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            choices = f.metadata.get("choices") or ()
            given[f.name] = None if value == "none" and None in choices and "none" not in choices else value
    return given


def _base_type(hint) -> type:
    """int | None -> int, etc."""
    args = [a for a in getattr(hint, "__args__", ()) if a is not type(None)]
    return args[0] if args else hint
