"""The options of ``visionlab show KIND SOURCE``: one picture of an idea at work (trainer/pictures.py)."""

from __future__ import annotations

from dataclasses import dataclass

from visionlab.opt.fields import OnDevice, option, positive, seed
from visionlab.util.errors import ConfigError

# Each picture, what SOURCE is for it, and its default SOURCE (None: a run folder must be given).
PICTURES: dict[str, tuple[str, str | None]] = {
    "attention": ("a ViT or ViViT run folder: each head of the last block and the attention rollout (ViViT: per "
                  "time index, and the temporal [CLS])", None),
    "positions": ("a ViT run folder: cosine similarity of the learned positional embeddings (ViT Fig. 7)", None),
    "patches": ("an image file or built-in name, cut into P x P patches with their token index", "astronaut"),
    "tubelets": ("a clip data set (moving-digits), cut into t x h x w tubelets", "moving-digits"),
    "forward": ("an image data set (digits): x_t of DDPM's forward process for growing t", "digits"),
    "reverse": ("a diffusion run folder: DDIM's reverse trajectory and predicted x0", None),
    "keypoints": ("an image file or built-in name: SIFT and SURF keypoints with scale and orientation", "camera"),
    "hog": ("an image file or built-in name: its HOG cells", "camera"),
    "gan-progress": ("a GAN run folder: its grids from fixed noise along training (and samples.gif)", None),
    "selection": ("a fit run folder (fit --record-selection K): the pixels trained on and the error map", None),
}


@dataclass
class ShowConfig(OnDevice):
    """Draw one picture (``visionlab show KIND SOURCE``) into ``output``."""

    kind: str = option("patches", "the kind of picture: " + "; ".join(f"{k}: {v[0]}" for k, v in PICTURES.items()),
                       choices=tuple(PICTURES), positional=True)
    source: str | None = option(None, "run folder, image or data set, as KIND says", positional=True)
    output: str | None = option(None, "picture file to write (default: show-KIND.png here, or in the run folder)")
    index: int = option(0, "attention, tubelets, forward: which test example to show")
    patch_size: int = option(32, "patches: patch size P in pixels")
    size: int | None = option(None, "patches, keypoints: image side after resizing (256; hog: 128); tubelets: clip "
                              "side (32)")
    tubelet: tuple[int, int, int] = option((2, 8, 8), "tubelets: tubelet size t h w")
    frames: int = option(4, "tubelets: frames of the clip")
    timesteps: int = option(1000, "forward: diffusion steps T")
    schedule: str = option("linear", "forward: noise schedule", choices=("linear", "cosine"))
    num: int = option(3, "reverse: samples to follow")
    steps: int = option(20, "reverse: DDIM steps")
    show: int = option(6, "forward, reverse: time steps shown; selection: recorded steps shown")
    seed: int = seed("the reverse trajectory's noise")

    def validate(self) -> "ShowConfig":
        for name in ("patch_size", "frames", "timesteps", "num", "steps", "show"):
            positive(name, getattr(self, name))
        if self.size is not None:
            positive("size", self.size)
        if self.index < 0:
            raise ConfigError(f"--index must be >= 0, got {self.index}")
        if self.source is None and PICTURES[self.kind][1] is None:
            raise ConfigError(f"show {self.kind} needs SOURCE: {PICTURES[self.kind][0]}")
        return self
