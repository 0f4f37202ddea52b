"""Data: built-in data sets and loaders for users' own files."""

from visionlab.data.images import (
    SAMPLE_IMAGES,
    ImageSignal,
    coordinate_grid,
    load_image,
    parse_size,
    save_image,
)

__all__ = ["SAMPLE_IMAGES", "ImageSignal", "coordinate_grid", "load_image", "parse_size", "save_image"]
