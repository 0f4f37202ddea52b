"""A model family's named presets -> its config dataclass: the one lookup (and the one "unknown preset" error) that
every ``*_config(preset, **overrides)`` function of ``models/`` goes through."""

from __future__ import annotations

from typing import Any, TypeVar

from visionlab.util.errors import ConfigError

C = TypeVar("C")


def from_preset(config_cls: type[C], presets: dict[str, dict[str, Any]], preset: str, family: str,
                **overrides) -> C:
    """``config_cls`` built from ``presets[preset]`` with ``overrides`` on top; an unknown name is a ConfigError
    that lists the family's presets."""
    if preset not in presets:
        raise ConfigError(f"unknown {family} preset {preset!r}; choose from {', '.join(presets)}")
    return config_cls(**{**presets[preset], **overrides})
