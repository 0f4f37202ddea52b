"""Bad inputs, one table: every loader and command, given a missing, empty, cut, foreign, NaN, out-of-range,
unreadable or hostile file, says what is wrong in one line and stops.

Each case builds its bad input in a fresh folder and runs ``visionlab.cli.main(argv)`` in-process. The test then
holds every case to the same promise: exit status 2 (a VisionlabError; anything else escapes ``main`` and fails the
case), stderr exactly one line ``visionlab <command>: error: ...`` that names the problem, no traceback on either
stream, no pickled code run, and no file lost or left behind: every file that existed before (the inputs, the run
folders' checkpoints and weights) is byte-identical afterwards and no new file appears.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shlex
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from machine import read_only
from visionlab import api
from visionlab.cli import main
from visionlab.data.images import save_image
from visionlab.util.checkpoint import load_state, save_state
from visionlab.util.errors import DataError

RNG = np.random.default_rng(0)
MARKER = "code-ran"  # a hostile pickle creates this file in its case folder if it is ever unpickled
REFUSED = "refused, it asks to run"  # how load_state turns down a pickle that names a function
RUN = ("--quiet", "--threads", "1")
FIT = ("--preset", "tiny", "--size", "16", "--steps", "1", *RUN, "--out", "{tmp}/out")
TINY_VIT = ("--image-size", "8", "--patch-size", "4", "--dim", "8", "--depth", "1", "--num-heads", "1", "--epochs",
            "1", *RUN, "--out", "{tmp}/out")
TINY_VIVIT = ("--frames", "4", *TINY_VIT)
TINY_DDPM = ("--base-channels", "8", "--timesteps", "20", "--batch-size", "16", "--sample-steps", "2", "--steps", "1",
             "--sample-every", "0", *RUN, "--out", "{tmp}/out")
TINY_UNET = ("--preset", "tiny", "--epochs", "1", *RUN, "--out", "{tmp}/out")
SAMPLE = ("--num", "1", "--steps", "1", *RUN)
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # root reads a chmod 000 folder anyway
# Warnings that Python does not print by default; any other would be two more lines on a user's stderr.
SILENT_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


# ---- the runs that cases resume, sample and predict from -------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Runs:
    """Run folders of the tiniest models, trained once for the module: never changed by a case (cases that damage a
    run copy it first), and checked byte for byte after every case."""

    root: Path
    vit: Path  # grey 8 x 8 images, 2 classes
    vivit: Path  # grey clips of 4 frames of 8 x 8, 2 classes
    ddpm: Path  # class-conditional, digits
    fit: Path  # a neural field of 'camera' at 16 x 16


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    root = tmp_path_factory.mktemp("runs")
    images = RNG.random((40, 8, 8)).astype(np.float32)
    np.savez(root / "two.npz", images=images, labels=np.arange(40) % 2, class_names=np.array(["a", "b"]))
    for name in ("left", "right"):
        for k in range(4):
            (root / "clips" / name).mkdir(parents=True, exist_ok=True)
            np.save(root / "clips" / name / f"{k}.npy", RNG.random((4, 8, 8)).astype(np.float32))
    out = ("--out", str(root))
    trained = [main(["train", "vit", "--data", str(root / "two.npz"), *TINY_VIT[:-2], *out, "--name", "vit"]),
               main(["train", "vivit", "--data", str(root / "clips"), *TINY_VIVIT[:-2], *out, "--name", "vivit"]),
               main(["train", "ddpm", *TINY_DDPM[:-2], *out, "--name", "ddpm"]),
               main(["fit", "camera", *FIT[:-2], *out, "--name", "fit"])]
    assert trained == [0, 0, 0, 0]
    return Runs(root=root, vit=root / "classify" / "vit", vivit=root / "classify" / "vivit",
                ddpm=root / "diffuse" / "ddpm", fit=root / "fit" / "fit")


# ---- builders of bad inputs ------------------------------------------------------------------------------------

def png(path: Path, shape=(8, 8, 3)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, RNG.random(shape))
    return path


def jpeg(path: Path) -> Path:
    Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path, format="JPEG")
    return path


def tiff(path: Path) -> Path:
    """An RGBA TIFF as OpenCV writes it (libtiff complains about its alpha channel on every read)."""
    assert cv2.imwrite(str(path), RNG.integers(0, 256, (8, 8, 4), dtype=np.uint8))
    return path


def gif(path: Path) -> Path:
    frames = [Image.fromarray(RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for _ in range(4)]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return path


def wav(path: Path, samples: np.ndarray) -> Path:
    wavfile.write(path, 8000, samples)
    return path


def text(path: Path, content: str = "this is a note, not data\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def cut(path: Path, keep: float = 0.5) -> Path:
    """The file cut short, as an interrupted download or copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def npy(path: Path, values: np.ndarray) -> Path:
    """An .npy array under exactly this name (np.save would append .npy to a name that lacks it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        np.save(file, values, allow_pickle=values.dtype == object)
    return path


def with_nan(shape, at) -> np.ndarray:
    values = RNG.random(shape).astype(np.float32)
    values[at] = np.nan
    return values


def frames(folder: Path, count: int, shape=(8, 8, 1)) -> Path:
    for k in range(count):
        png(folder / f"{k}.png", shape)
    return folder


def dataset(path: Path, **arrays) -> Path:
    arrays.setdefault("images", RNG.random((20, 8, 8)).astype(np.float32))
    arrays.setdefault("labels", np.arange(20) % 2)
    np.savez(path, **arrays)
    return path


def class_folders(root: Path) -> Path:
    for name in ("a", "b"):
        for k in range(2):
            png(root / name / f"{k}.png")
    return root


def masks(root: Path, mask: np.ndarray, *, classes: tuple[str, ...] = ()) -> Path:
    for k in range(3):
        png(root / "images" / f"{k}.png", (16, 16, 3))
        (root / "masks").mkdir(exist_ok=True)
        Image.fromarray(mask).save(root / "masks" / f"{k}.png")
    if classes:
        text(root / "classes.txt", "\n".join(classes))
    return root


def square_mask(value: int = 1) -> np.ndarray:
    mask = np.zeros((16, 16), np.uint8)
    mask[4:9, 4:9] = value
    return mask


def copy_run(source: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(source, tmp / "run"))


def restate(run: Path, **changes) -> Path:
    """The run's checkpoint with some fields changed (e.g. the version that wrote it)."""
    state = load_state(run)
    state.update(changes)
    save_state(run / "checkpoint.pt", state)
    return run


class RunsCode:
    """Unpickling this calls os.system, which creates the marker file: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def hostile_checkpoint(run: Path, tmp: Path) -> Path:
    torch.save({"step": 1, "task": "fit", "payload": RunsCode(tmp / MARKER)}, run / "checkpoint.pt")
    return run


def hostile_cifar(root: Path, tmp: Path) -> Path:
    root.mkdir()
    for name, key in (("batches.meta", "label_names"), ("test_batch", "data")):
        with open(root / name, "wb") as f:
            pickle.dump({key: RunsCode(tmp / MARKER)}, f)
    return root


@dataclass(frozen=True, kw_only=True)
class Also:
    """What a builder may return: more that the message must say, and folders to make unreadable while ``main``
    runs (only then, so that the files inside are compared before and after like all others)."""

    expect: tuple[str, ...] = ()
    lock: tuple[Path, ...] = ()
    read_only: tuple[Path, ...] = ()  # folders that may be read but not written while main runs (tests/machine.py)


def read_only_folder(path: Path) -> Also:
    """An existing, empty output folder that cannot be written."""
    path.mkdir()
    return Also(read_only=(path,))


def read_only_run(run: Path) -> Also:
    """A copy of a finished run, readable but not writable (resumed, evaluated, sampled from)."""
    return Also(read_only=(run,))


def unreadable_folder(path: Path, inside: Callable[[Path], object]) -> Also:
    """A folder its user may not read (chmod 000). Root reads it anyway, so as root the case gets a file where the
    folder is expected instead: the other way a folder can fail to be listed."""
    if AS_ROOT:
        text(path, "a file where a folder is expected\n")
        return Also()
    path.mkdir()
    inside(path)
    return Also(expect=("permission denied",), lock=(path,))


# ---- the table -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Case:
    """One bad input: ``build(tmp, runs)`` writes it under ``tmp`` (and may return :class:`Also`); ``argv`` has
    ``{tmp}``, ``{vit}``, ``{vivit}``, ``{ddpm}`` and ``{fit}`` replaced by those folders;
    the one line of stderr must contain every string of ``expect``."""

    id: str
    build: Callable[[Path, Runs], object]
    argv: tuple[str, ...]
    expect: tuple[str, ...]


def nothing(tmp: Path, runs: Runs) -> None:
    return None


CASES = [
    # -- fit: images, sounds and videos for neural fields
    Case(id="fit-missing-file", build=nothing, argv=("fit", "{tmp}/missing.png", *FIT),
         expect=("no such file or built-in signal", "missing.png")),
    Case(id="fit-missing-folder", build=nothing, argv=("fit", "{tmp}/nowhere/", "--kind", "video", *FIT),
         expect=("no such video file or folder", "nowhere")),
    Case(id="fit-empty-png", build=lambda tmp, runs: text(tmp / "empty.png", ""), argv=("fit", "{tmp}/empty.png", *FIT),
         expect=("empty.png", "the file is empty")),
    Case(id="fit-truncated-png", build=lambda tmp, runs: cut(png(tmp / "cut.png", (64, 64, 3))),
         argv=("fit", "{tmp}/cut.png", *FIT), expect=("cut.png", "truncated")),
    Case(id="fit-truncated-jpeg", build=lambda tmp, runs: cut(jpeg(tmp / "cut.jpg")),
         argv=("fit", "{tmp}/cut.jpg", *FIT), expect=("cut.jpg", "truncated")),
    Case(id="fit-truncated-tiff", build=lambda tmp, runs: cut(tiff(tmp / "cut.tif"), 0.15),
         argv=("fit", "{tmp}/cut.tif", *FIT), expect=("cut.tif", "TIFF")),  # Pillow and libtiff warn on stderr
    Case(id="fit-text-as-png", build=lambda tmp, runs: text(tmp / "note.png"), argv=("fit", "{tmp}/note.png", *FIT),
         expect=("note.png", "not an image")),
    Case(id="fit-text-as-wav", build=lambda tmp, runs: text(tmp / "note.wav"), argv=("fit", "{tmp}/note.wav", *FIT[4:]),
         expect=("note.wav", "not a readable WAV file")),
    Case(id="fit-txt-as-audio", build=lambda tmp, runs: text(tmp / "note.txt"),
         argv=("fit", "{tmp}/note.txt", "--kind", "audio", *FIT[4:]), expect=("note.txt", "not a readable WAV file")),
    Case(id="fit-text-as-gif", build=lambda tmp, runs: text(tmp / "note.gif"), argv=("fit", "{tmp}/note.gif", *FIT),
         expect=("note.gif", "not a GIF")),
    Case(id="fit-text-as-npy", build=lambda tmp, runs: text(tmp / "note.npy"), argv=("fit", "{tmp}/note.npy", *FIT),
         expect=("note.npy", "not a NumPy .npy file")),
    Case(id="fit-empty-gif", build=lambda tmp, runs: text(tmp / "empty.gif", ""), argv=("fit", "{tmp}/empty.gif", *FIT),
         expect=("empty.gif", "the file is empty")),
    Case(id="fit-truncated-gif", build=lambda tmp, runs: cut(gif(tmp / "cut.gif")), argv=("fit", "{tmp}/cut.gif", *FIT),
         expect=("cut.gif", "truncated or corrupt")),
    Case(id="fit-truncated-wav", build=lambda tmp, runs: cut(wav(tmp / "cut.wav", np.arange(1000, dtype=np.int16))),
         argv=("fit", "{tmp}/cut.wav", *FIT[4:]), expect=("cut.wav", "truncated")),
    Case(id="fit-truncated-npy", build=lambda tmp, runs: cut(npy(tmp / "cut.npy", RNG.random((4, 8, 8))), 0.7),
         argv=("fit", "{tmp}/cut.npy", *FIT), expect=("cut.npy", "cannot be read")),
    Case(id="fit-npy-of-wrong-rank", build=lambda tmp, runs: npy(tmp / "flat.npy", np.zeros((8, 8), np.float32)),
         argv=("fit", "{tmp}/flat.npy", *FIT), expect=("flat.npy", "shape (8, 8); expected (T, H, W)")),
    Case(id="fit-npy-with-nan", build=lambda tmp, runs: npy(tmp / "nan.npy", with_nan((4, 8, 8), (2, 1, 1))),
         argv=("fit", "{tmp}/nan.npy", *FIT), expect=("nan.npy", "frame 2 contains NaN")),
    Case(id="fit-npy-of-python-objects", build=lambda tmp, runs: npy(tmp / "objects.npy", np.array([{}], object)),
         argv=("fit", "{tmp}/objects.npy", *FIT), expect=("objects.npy", "holds Python objects")),
    Case(id="fit-wav-with-nan",
         build=lambda tmp, runs: wav(tmp / "nan.wav", np.array([0.0, np.nan, 0.1], np.float32)),
         argv=("fit", "{tmp}/nan.wav", *FIT[4:]), expect=("nan.wav", "NaN")),
    Case(id="fit-wav-out-of-range", build=lambda tmp, runs: wav(tmp / "loud.wav", np.array([0.0, 1.5], np.float32)),
         argv=("fit", "{tmp}/loud.wav", *FIT[4:]), expect=("loud.wav", "float samples in [0, 1.5], expected [-1, 1]")),
    Case(id="fit-empty-folder-of-images", build=lambda tmp, runs: (tmp / "album").mkdir(),
         argv=("fit", "{tmp}/album", *FIT), expect=("album has no images",)),
    Case(id="fit-empty-frame-folder", build=lambda tmp, runs: (tmp / "clip").mkdir(),
         argv=("fit", "{tmp}/clip", "--kind", "video", *FIT), expect=("clip: a clip folder without frame images",)),
    Case(id="fit-frame-folder-with-truncated-frame",
         build=lambda tmp, runs: cut(png(frames(tmp / "clip", 3) / "2.png", (64, 64, 1))),
         argv=("fit", "{tmp}/clip", "--kind", "video", *FIT), expect=("2.png", "truncated")),
    Case(id="fit-folder-of-truncated-images",  # one readable image would be fitted, the rest skipped (test_fit.py)
         build=lambda tmp, runs: [cut(png(tmp / "album" / f"{k}.png", (64, 64, 3))) for k in "ab"],
         argv=("fit", "{tmp}/album", *FIT), expect=("no image of", "album could be read", "a.png", "truncated")),
    Case(id="fit-frames-of-two-sizes", build=lambda tmp, runs: png(frames(tmp / "clip", 3) / "3.png", (9, 8, 1)),
         argv=("fit", "{tmp}/clip", "--kind", "video", *FIT), expect=("3.png: frame is 9x8, but 0.png",)),
    Case(id="fit-unreadable-folder",
         build=lambda tmp, runs: unreadable_folder(tmp / "locked", lambda folder: png(folder / "a.png")),
         argv=("fit", "{tmp}/locked", *FIT), expect=("locked",)),
    Case(id="fit-image-below-the-ssim-window", build=lambda tmp, runs: png(tmp / "small.png", (8, 8, 3)),
         argv=("fit", "{tmp}/small.png", *FIT[4:]), expect=("11x11",)),
    # -- fit --resume: checkpoints
    Case(id="fit-resume-missing-run", build=nothing, argv=("fit", "--resume", "{tmp}/gone", *RUN),
         expect=("no checkpoint at", "gone")),
    Case(id="fit-resume-empty-checkpoint",
         build=lambda tmp, runs: (copy_run(runs.fit, tmp) / "checkpoint.pt").write_bytes(b""),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("checkpoint.pt", "the file is empty")),
    Case(id="fit-resume-random-bytes",
         build=lambda tmp, runs: (copy_run(runs.fit, tmp) / "checkpoint.pt").write_bytes(RNG.bytes(3000)),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("checkpoint.pt", "not a PyTorch checkpoint")),
    Case(id="fit-resume-truncated-zip", build=lambda tmp, runs: cut(copy_run(runs.fit, tmp) / "checkpoint.pt"),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("checkpoint.pt", "cut short")),
    Case(id="fit-resume-text-file", build=lambda tmp, runs: text(copy_run(runs.fit, tmp) / "checkpoint.pt"),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("checkpoint.pt", "not a PyTorch checkpoint")),
    Case(id="fit-resume-hostile-pickle", build=lambda tmp, runs: hostile_checkpoint(copy_run(runs.fit, tmp), tmp),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("cannot read checkpoint", REFUSED, "system", "run code")),
    Case(id="fit-resume-later-version", build=lambda tmp, runs: restate(copy_run(runs.fit, tmp), version="99.0"),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("written by visionlab 99.0", "upgrade")),
    Case(id="fit-resume-unknown-version-field", build=lambda tmp, runs: restate(copy_run(runs.fit, tmp), version=3),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("version field 3 is not a visionlab version",)),
    Case(id="fit-resume-not-a-training-state",
         build=lambda tmp, runs: torch.save([1, 2, 3], copy_run(runs.fit, tmp) / "checkpoint.pt"),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("is not a visionlab training checkpoint",)),
    Case(id="fit-resume-state-without-config",
         build=lambda tmp, runs: save_state(copy_run(runs.fit, tmp) / "checkpoint.pt", {"step": 1, "task": "fit"}),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("checkpoint.pt", "config")),
    Case(id="fit-resume-of-another-task", build=lambda tmp, runs: copy_run(runs.ddpm, tmp),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("'diffuse'",)),
    # -- train: data sets
    Case(id="train-missing-npz", build=nothing, argv=("train", "vit", "--data", "{tmp}/missing.npz", *TINY_VIT),
         expect=("no such data set or folder", "missing.npz")),
    Case(id="train-text-as-npz", build=lambda tmp, runs: text(tmp / "note.npz"),
         argv=("train", "vit", "--data", "{tmp}/note.npz", *TINY_VIT), expect=("note.npz", "not an .npz archive")),
    Case(id="train-npy-as-npz", build=lambda tmp, runs: npy(tmp / "array.npz", np.zeros((3, 8, 8))),
         argv=("train", "vit", "--data", "{tmp}/array.npz", *TINY_VIT), expect=("array.npz: holds a single array",)),
    Case(id="train-truncated-npz", build=lambda tmp, runs: cut(dataset(tmp / "cut.npz"), 0.6),
         argv=("train", "vit", "--data", "{tmp}/cut.npz", *TINY_VIT), expect=("cut.npz", "not a readable .npz")),
    Case(id="train-npz-with-nan", build=lambda tmp, runs: dataset(tmp / "nan.npz", images=with_nan((20, 8, 8), 3)),
         argv=("train", "vit", "--data", "{tmp}/nan.npz", *TINY_VIT), expect=("nan.npz", "image 3 contains NaN")),
    Case(id="train-npz-negative-labels", build=lambda tmp, runs: dataset(tmp / "neg.npz", labels=np.arange(20) % 2 - 1),
         argv=("train", "vit", "--data", "{tmp}/neg.npz", *TINY_VIT), expect=("neg.npz", "label -1", "outside")),
    Case(id="train-npz-labels-beyond-class-names",
         build=lambda tmp, runs: dataset(tmp / "big.npz", labels=np.arange(20) % 2 + 5,
                                         class_names=np.array(["a", "b"])),
         argv=("train", "vit", "--data", "{tmp}/big.npz", *TINY_VIT), expect=("label 5 at index 0 is outside 0..1",)),
    Case(id="train-npz-float-labels",
         build=lambda tmp, runs: dataset(tmp / "float.npz", labels=(np.arange(20) % 2).astype(float)),
         argv=("train", "vit", "--data", "{tmp}/float.npz", *TINY_VIT),
         expect=("labels must be a 1-D array of integers",)),
    Case(id="train-npz-pixels-out-of-range",
         build=lambda tmp, runs: dataset(tmp / "loud.npz", images=np.full((20, 8, 8), 3.0)),
         argv=("train", "vit", "--data", "{tmp}/loud.npz", *TINY_VIT), expect=("loud.npz", "expected [0, 1]")),
    Case(id="train-npz-images-of-wrong-rank",
         build=lambda tmp, runs: dataset(tmp / "flat.npz", images=np.zeros((20, 8))),
         argv=("train", "vit", "--data", "{tmp}/flat.npz", *TINY_VIT), expect=("'images' has shape (20, 8)",)),
    Case(id="train-npz-of-python-objects",
         build=lambda tmp, runs: dataset(tmp / "objects.npz", images=np.array([None] * 20, dtype=object)),
         argv=("train", "vit", "--data", "{tmp}/objects.npz", *TINY_VIT), expect=("'images' holds Python objects",)),
    Case(id="train-empty-folder", build=lambda tmp, runs: (tmp / "album").mkdir(),
         argv=("train", "vit", "--data", "{tmp}/album", *TINY_VIT), expect=("album has no class sub-folders",)),
    Case(id="train-folder-with-truncated-image",
         build=lambda tmp, runs: cut(png(class_folders(tmp / "album") / "b" / "2.png", (64, 64, 3))),
         argv=("train", "vit", "--data", "{tmp}/album", *TINY_VIT), expect=("b/2.png", "truncated")),
    Case(id="train-folder-with-text-as-png", build=lambda tmp, runs: text(class_folders(tmp / "album") / "a" / "x.png"),
         argv=("train", "vit", "--data", "{tmp}/album", *TINY_VIT), expect=("a/x.png", "not an image")),
    Case(id="train-unreadable-folder", build=lambda tmp, runs: unreadable_folder(tmp / "locked", class_folders),
         argv=("train", "vit", "--data", "{tmp}/locked", *TINY_VIT), expect=("locked",)),
    Case(id="train-mnist-truncated-idx",
         build=lambda tmp, runs: [(tmp / "mnist").mkdir(),
                                  (tmp / "mnist" / "train-images-idx3-ubyte").write_bytes(
                                      b"\0\0\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\0" * 10),
                                  (tmp / "mnist" / "train-labels-idx1-ubyte").write_bytes(
                                      b"\0\0\x08\x01" + (5).to_bytes(4, "big") + b"\0" * 5)],
         argv=("train", "vit", "--data", "{tmp}/mnist", *TINY_VIT),
         expect=("train-images-idx3-ubyte: truncated",)),
    Case(id="train-mnist-gzip-garbage",
         build=lambda tmp, runs: [text(tmp / "mnist" / "train-images-idx3-ubyte.gz"),
                                  text(tmp / "mnist" / "train-labels-idx1-ubyte.gz")],
         argv=("train", "vit", "--data", "{tmp}/mnist", *TINY_VIT),
         expect=("train-images-idx3-ubyte.gz", "Not a gzipped file")),
    Case(id="train-cifar-hostile-pickle", build=lambda tmp, runs: hostile_cifar(tmp / "cifar", tmp),
         argv=("train", "vit", "--data", "{tmp}/cifar", *TINY_VIT), expect=("refused to unpickle", "system")),
    Case(id="train-vivit-clip-with-too-few-frames",
         build=lambda tmp, runs: [shutil.copytree(runs.root / "clips", tmp / "clips"),
                                  npy(tmp / "clips" / "left" / "0.npy", np.zeros((2, 8, 8), np.float32))],
         argv=("train", "vivit", "--data", "{tmp}/clips", *TINY_VIVIT),
         expect=("0.npy: has 2 frames, needs at least 4",)),
    Case(id="train-vivit-clip-with-nan",
         build=lambda tmp, runs: [shutil.copytree(runs.root / "clips", tmp / "clips"),
                                  npy(tmp / "clips" / "right" / "1.npy", with_nan((4, 8, 8), (3, 0, 0)))],
         argv=("train", "vivit", "--data", "{tmp}/clips", *TINY_VIVIT), expect=("1.npy: frame 3 contains NaN",)),
    Case(id="train-ddpm-npz-negative-labels",
         build=lambda tmp, runs: dataset(tmp / "neg.npz", labels=np.arange(20) % 2 - 1),
         argv=("train", "ddpm", "--data", "{tmp}/neg.npz", *TINY_DDPM), expect=("neg.npz", "label -1")),
    Case(id="train-unet-mask-beyond-classes",
         build=lambda tmp, runs: masks(tmp / "seg", square_mask(7), classes=("background", "square")),
         argv=("train", "unet", "--data", "{tmp}/seg", *TINY_UNET), expect=("class value 7 is outside the 2 classes",)),
    Case(id="train-unet-black-and-white-mask", build=lambda tmp, runs: masks(tmp / "seg", square_mask(255)),
         argv=("train", "unet", "--data", "{tmp}/seg", *TINY_UNET), expect=("values 0, 255", "never occur")),
    Case(id="train-unet-colour-mask",
         build=lambda tmp, runs: masks(tmp / "seg", np.stack([square_mask(200), square_mask(0), square_mask(9)], -1)),
         argv=("train", "unet", "--data", "{tmp}/seg", *TINY_UNET), expect=("a colour mask",)),
    Case(id="train-unet-truncated-mask",
         build=lambda tmp, runs: cut(masks(tmp / "seg", square_mask()) / "masks" / "1.png"),
         argv=("train", "unet", "--data", "{tmp}/seg", *TINY_UNET), expect=("cannot read mask", "1.png")),
    Case(id="train-unet-folder-without-masks", build=lambda tmp, runs: png(tmp / "seg" / "images" / "0.png"),
         argv=("train", "unet", "--data", "{tmp}/seg", *TINY_UNET),
         expect=("needs two sub-folders, images/ and masks/",)),
    # -- train --resume: checkpoints
    Case(id="train-resume-random-bytes",
         build=lambda tmp, runs: (copy_run(runs.vit, tmp) / "checkpoint.pt").write_bytes(RNG.bytes(3000)),
         argv=("train", "--resume", "{tmp}/run", *RUN), expect=("checkpoint.pt", "not a PyTorch checkpoint")),
    Case(id="train-resume-truncated-zip", build=lambda tmp, runs: cut(copy_run(runs.ddpm, tmp) / "checkpoint.pt", 0.9),
         argv=("train", "--resume", "{tmp}/run", *RUN), expect=("checkpoint.pt", "cut short")),
    Case(id="train-resume-hostile-pickle", build=lambda tmp, runs: hostile_checkpoint(copy_run(runs.vit, tmp), tmp),
         argv=("train", "--resume", "{tmp}/run", *RUN), expect=("cannot read checkpoint", REFUSED, "run code")),
    Case(id="train-resume-later-version", build=lambda tmp, runs: restate(copy_run(runs.vit, tmp), version="0.99.1"),
         argv=("train", "--resume", "{tmp}/run", *RUN), expect=("written by visionlab 0.99.1",)),
    Case(id="train-resume-damaged-metrics-log",
         build=lambda tmp, runs: text(copy_run(runs.vit, tmp) / "metrics.jsonl", '{"step": 1}\n{"step": 2,\n{}\n'),
         argv=("train", "--resume", "{tmp}/run", *RUN), expect=("metrics.jsonl: line 2 is not valid JSON",)),
    Case(id="train-ddpm-resume-of-a-classifier", build=lambda tmp, runs: copy_run(runs.vit, tmp),
         argv=("train", "ddpm", "--resume", "{tmp}/run", *RUN),
         expect=("holds a 'classify' run, not a 'diffuse' one",)),
    Case(id="train-resume-of-a-neural-field", build=lambda tmp, runs: copy_run(runs.fit, tmp),
         argv=("train", "--resume", "{tmp}/run", *RUN), expect=("'fit'",)),
    # -- predict: images and clips for a trained classifier
    Case(id="predict-missing-image", build=nothing, argv=("predict", "{vit}", "{tmp}/missing.png"),
         expect=("missing.png", "no such file")),
    Case(id="predict-rgb-image-to-grey-model", build=lambda tmp, runs: png(tmp / "rgb.png", (8, 8, 3)),
         argv=("predict", "{vit}", "{tmp}/rgb.png"), expect=("rgb.png: 3 channel(s), but the model reads 1",)),
    Case(id="predict-truncated-png", build=lambda tmp, runs: cut(png(tmp / "cut.png", (64, 64, 1))),
         argv=("predict", "{vit}", "{tmp}/cut.png"), expect=("cut.png", "truncated")),
    Case(id="predict-empty-png", build=lambda tmp, runs: text(tmp / "empty.png", ""),
         argv=("predict", "{vit}", "{tmp}/empty.png"), expect=("empty.png", "the file is empty")),
    Case(id="predict-folder-as-image", build=lambda tmp, runs: (tmp / "shots.png").mkdir(),
         argv=("predict", "{vit}", "{tmp}/shots.png"), expect=("shots.png is a directory",)),
    Case(id="predict-clip-with-too-few-frames", build=lambda tmp, runs: npy(tmp / "short.npy", np.zeros((2, 8, 8))),
         argv=("predict", "{vivit}", "{tmp}/short.npy"), expect=("short.npy: has 2 frames, needs at least 4",)),
    Case(id="predict-clip-with-nan", build=lambda tmp, runs: npy(tmp / "nan.npy", with_nan((4, 8, 8), (1, 2, 3))),
         argv=("predict", "{vivit}", "{tmp}/nan.npy"), expect=("nan.npy: frame 1 contains NaN",)),
    Case(id="predict-clip-of-wrong-rank", build=lambda tmp, runs: npy(tmp / "flat.npy", np.zeros((8, 8))),
         argv=("predict", "{vivit}", "{tmp}/flat.npy"), expect=("flat.npy: shape (8, 8)",)),
    Case(id="predict-clip-of-five-channels", build=lambda tmp, runs: npy(tmp / "five.npy", np.zeros((4, 8, 8, 5))),
         argv=("predict", "{vivit}", "{tmp}/five.npy"), expect=("five.npy: shape (4, 8, 8, 5)",)),
    Case(id="predict-text-as-clip", build=lambda tmp, runs: text(tmp / "note.npy"),
         argv=("predict", "{vivit}", "{tmp}/note.npy"), expect=("note.npy", "not a NumPy .npy file")),
    Case(id="predict-empty-frame-folder", build=lambda tmp, runs: (tmp / "clip").mkdir(),
         argv=("predict", "{vivit}", "{tmp}/clip"), expect=("clip: a clip folder without frame images",)),
    Case(id="predict-frames-of-two-sizes", build=lambda tmp, runs: png(frames(tmp / "clip", 4) / "3.png", (9, 8, 1)),
         argv=("predict", "{vivit}", "{tmp}/clip"), expect=("3.png: frame is 9x8",)),
    Case(id="predict-unreadable-frame-folder",
         build=lambda tmp, runs: unreadable_folder(tmp / "locked", lambda d: frames(d, 4)),
         argv=("predict", "{vivit}", "{tmp}/locked"), expect=("locked",)),
    Case(id="predict-with-a-folder-that-is-no-run", build=lambda tmp, runs: (tmp / "run").mkdir(),
         argv=("predict", "{tmp}/run", "{tmp}/x.png"), expect=("no model.json",)),
    Case(id="predict-with-damaged-model-json",
         build=lambda tmp, runs: text(copy_run(runs.vit, tmp) / "model.json", "{"),
         argv=("predict", "{tmp}/run", "{tmp}/x.png"), expect=("model.json: not valid JSON",)),
    Case(id="predict-with-truncated-weights",
         build=lambda tmp, runs: cut(copy_run(runs.vit, tmp) / "model.safetensors"),
         argv=("predict", "{tmp}/run", "{tmp}/x.png"), expect=("cannot read weights", "model.safetensors")),
    Case(id="predict-with-a-diffusion-run", build=lambda tmp, runs: png(tmp / "x.png", (8, 8, 1)),
         argv=("predict", "{ddpm}", "{tmp}/x.png"), expect=("not a classifier",)),
    # -- evaluate
    Case(id="evaluate-missing-data", build=nothing, argv=("evaluate", "{vit}", "--data", "{tmp}/missing.npz"),
         expect=("no such data set or folder", "missing.npz")),
    Case(id="evaluate-npz-with-nan", build=lambda tmp, runs: dataset(tmp / "nan.npz", images=with_nan((20, 8, 8), 4)),
         argv=("evaluate", "{vit}", "--data", "{tmp}/nan.npz"), expect=("nan.npz", "image 4 contains NaN")),
    Case(id="evaluate-damaged-config-yaml",
         build=lambda tmp, runs: text(copy_run(runs.vit, tmp) / "config.yaml", "data: [unclosed\n"),
         argv=("evaluate", "{tmp}/run"), expect=("config.yaml: not valid YAML",)),
    Case(id="evaluate-a-diffusion-run", build=nothing, argv=("evaluate", "{ddpm}"), expect=("not a classifier",)),
    # -- sample: diffusion runs and their checkpoints
    Case(id="sample-label-out-of-range", build=nothing, argv=("sample", "{ddpm}", "--labels", "99", *SAMPLE),
         expect=("label 99 is out of range: the model knows classes 0 .. 9",)),
    Case(id="sample-a-classifier-run", build=nothing, argv=("sample", "{vit}", *SAMPLE),
         expect=("holds a vit model, not a diffusion model",)),
    Case(id="sample-a-neural-field-checkpoint", build=nothing, argv=("sample", "{fit}/checkpoint.pt", *SAMPLE),
         expect=("is a 'fit' checkpoint, not a diffusion one",)),
    Case(id="sample-random-bytes",
         build=lambda tmp, runs: (copy_run(runs.ddpm, tmp) / "checkpoint.pt").write_bytes(RNG.bytes(5000)),
         argv=("sample", "{tmp}/run/checkpoint.pt", *SAMPLE), expect=("checkpoint.pt", "not a PyTorch checkpoint")),
    Case(id="sample-truncated-checkpoint", build=lambda tmp, runs: cut(copy_run(runs.ddpm, tmp) / "checkpoint.pt", 0.3),
         argv=("sample", "{tmp}/run/checkpoint.pt", *SAMPLE), expect=("checkpoint.pt", "cut short")),
    Case(id="sample-hostile-pickle", build=lambda tmp, runs: hostile_checkpoint(copy_run(runs.ddpm, tmp), tmp),
         argv=("sample", "{tmp}/run/checkpoint.pt", *SAMPLE), expect=("cannot read checkpoint", REFUSED, "run code")),
    Case(id="sample-later-version", build=lambda tmp, runs: restate(copy_run(runs.ddpm, tmp), version="1.0"),
         argv=("sample", "{tmp}/run/checkpoint.pt", *SAMPLE), expect=("written by visionlab 1.0",)),
    Case(id="sample-damaged-model-json", build=lambda tmp, runs: text(copy_run(runs.ddpm, tmp) / "model.json", "[1,"),
         argv=("sample", "{tmp}/run", *SAMPLE), expect=("model.json: not valid JSON",)),
    Case(id="sample-random-weights",
         build=lambda tmp, runs: (copy_run(runs.ddpm, tmp) / "model.safetensors").write_bytes(RNG.bytes(100)),
         argv=("sample", "{tmp}/run", *SAMPLE), expect=("cannot read weights", "model.safetensors")),
    Case(id="sample-a-folder-that-is-no-run", build=lambda tmp, runs: (tmp / "run").mkdir(),
         argv=("sample", "{tmp}/run", *SAMPLE), expect=("is not a diffusion run",)),
    # -- evaluate-samples: a .npy of generated images
    Case(id="evaluate-samples-missing-file", build=nothing,
         argv=("evaluate-samples", "{ddpm}", "--samples", "{tmp}/missing.npy", *RUN),
         expect=("no such samples file", "missing.npy")),
    Case(id="evaluate-samples-of-wrong-rank", build=lambda tmp, runs: npy(tmp / "flat.npy", np.zeros((4, 16, 16))),
         argv=("evaluate-samples", "{ddpm}", "--samples", "{tmp}/flat.npy", *RUN),
         expect=("flat.npy: expected images (N, C, H, W)",)),
    Case(id="evaluate-samples-text-as-npy", build=lambda tmp, runs: text(tmp / "note.npy"),
         argv=("evaluate-samples", "{ddpm}", "--samples", "{tmp}/note.npy", *RUN),
         expect=("note.npy", "not a NumPy .npy file")),
    Case(id="evaluate-samples-npz",
         build=lambda tmp, runs: np.savez(tmp / "samples.npz", images=np.zeros((4, 1, 16, 16))),
         argv=("evaluate-samples", "{ddpm}", "--samples", "{tmp}/samples.npz", *RUN), expect=("samples.npz",)),
    Case(id="evaluate-samples-no-images", build=lambda tmp, runs: npy(tmp / "none.npy", np.zeros((0, 1, 16, 16))),
         argv=("evaluate-samples", "{ddpm}", "--samples", "{tmp}/none.npy", *RUN), expect=("none.npy",)),
    Case(id="evaluate-samples-damaged-labels",
         build=lambda tmp, runs: [npy(tmp / "s.npy", RNG.random((4, 1, 16, 16))), text(tmp / "s.labels.npy")],
         argv=("evaluate-samples", "{ddpm}", "--samples", "{tmp}/s.npy", *RUN), expect=("s.labels.npy",)),
    # -- features: hand-made features on folders of images
    Case(id="features-missing-folder", build=nothing, argv=("features", "--data", "{tmp}/nowhere", "--quiet"),
         expect=("no such data set or folder", "nowhere")),
    Case(id="features-empty-folder", build=lambda tmp, runs: (tmp / "album").mkdir(),
         argv=("features", "--data", "{tmp}/album", "--quiet"), expect=("album has no class sub-folders",)),
    Case(id="features-truncated-image",
         build=lambda tmp, runs: cut(jpeg(class_folders(tmp / "album") / "a" / "cut.jpg")),
         argv=("features", "--data", "{tmp}/album", "--quiet"), expect=("a/cut.jpg", "truncated")),
    Case(id="features-unreadable-folder", build=lambda tmp, runs: unreadable_folder(tmp / "locked", class_folders),
         argv=("features", "--data", "{tmp}/locked", "--quiet"), expect=("locked",)),
    # -- experiment: tables of fits
    Case(id="experiment-truncated-image", build=lambda tmp, runs: cut(png(tmp / "cut.png", (64, 64, 3))),
         argv=("experiment", "evos-table1", "--images", "{tmp}/cut.png", "--steps", "20", "--size", "16", *RUN,
               "--out", "{tmp}/out"), expect=("cut.png", "truncated")),
    Case(id="experiment-empty-folder", build=lambda tmp, runs: (tmp / "album").mkdir(),
         argv=("experiment", "evos-table1", "--images", "{tmp}/album", "--steps", "20", *RUN, "--out", "{tmp}/out"),
         expect=("album has no images",)),
    # -- shapes: sizes of a model on the meta device
    Case(id="shapes-zero-channels", build=nothing, argv=("shapes", "vit", "--channels", "0"),
         expect=("channels must be > 0",)),
    Case(id="shapes-zero-frames", build=nothing, argv=("shapes", "vivit", "--frames", "0"), expect=("frames",)),
    Case(id="shapes-zero-tubelet", build=nothing, argv=("shapes", "vivit", "--tubelet", "0", "16", "16"),
         expect=("tubelet",)),
    Case(id="shapes-zero-patch-size", build=nothing, argv=("shapes", "vit", "--patch-size", "0"),
         expect=("patch size",)),
    # -- the machine: output folders that cannot be written, sizes no memory holds (tests/test_machine_failures.py
    #    has the rest: memory running out, a full disk, signals)
    Case(id="fit-out-read-only", build=lambda tmp, runs: read_only_folder(tmp / "ro"),
         argv=("fit", "camera", *FIT, "--out", "{tmp}/ro"), expect=("cannot write in", "ro", "choose another --out")),
    Case(id="fit-out-under-a-file", build=lambda tmp, runs: text(tmp / "notes"),
         argv=("fit", "camera", *FIT, "--out", "{tmp}/notes/runs"), expect=("notes is a file, not a folder",)),
    Case(id="train-vit-out-read-only", build=lambda tmp, runs: read_only_folder(tmp / "ro"),
         argv=("train", "vit", "--data", "digits", *TINY_VIT, "--out", "{tmp}/ro"), expect=("cannot write in",)),
    Case(id="train-ddpm-out-under-a-file", build=lambda tmp, runs: text(tmp / "notes"),
         argv=("train", "ddpm", *TINY_DDPM, "--out", "{tmp}/notes"), expect=("notes is a file, not a folder",)),
    Case(id="features-out-read-only", build=lambda tmp, runs: read_only_folder(tmp / "ro"),
         argv=("features", "--quiet", "--out", "{tmp}/ro"), expect=("cannot write in",)),
    Case(id="fit-resume-read-only-run", build=lambda tmp, runs: read_only_run(copy_run(runs.fit, tmp)),
         argv=("fit", "--resume", "{tmp}/run", *RUN), expect=("cannot write in", "run", "copy the run folder")),
    Case(id="train-resume-read-only-run", build=lambda tmp, runs: read_only_run(copy_run(runs.vit, tmp)),
         argv=("train", "--resume", "{tmp}/run", *RUN), expect=("cannot write in", "copy the run folder")),
    Case(id="evaluate-read-only-run", build=lambda tmp, runs: read_only_run(copy_run(runs.vit, tmp)),
         argv=("evaluate", "{tmp}/run"), expect=("cannot write in",)),
    Case(id="sample-read-only-run", build=lambda tmp, runs: read_only_run(copy_run(runs.ddpm, tmp)),
         argv=("sample", "{tmp}/run", *SAMPLE), expect=("cannot write in",)),
    Case(id="sample-out-under-a-file", build=lambda tmp, runs: text(tmp / "notes"),
         argv=("sample", "{ddpm}", *SAMPLE, "--out", "{tmp}/notes/grid"), expect=("notes is a file, not a folder",)),
    Case(id="fit-size-too-large", build=nothing, argv=("fit", "camera", *FIT, "--size", "100000"),
         expect=("size 100000 is too large", "at most 16384")),
]


def _params():
    for case in CASES:
        yield pytest.param(case, id=case.id)


def snapshot(*roots: Path) -> dict[Path, str]:
    """SHA-256 of every file under ``roots``."""
    return {Path(folder) / name: hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest()
            for root in roots for folder, _, names in os.walk(root) for name in names}


def run_case(case: Case, tmp: Path, runs: Runs, capfd) -> str:
    """Build the input, run ``main`` and check the promise; return the one line of stderr."""
    also = case.build(tmp, runs)
    also = also if isinstance(also, Also) else Also()
    names = {"tmp": tmp, "vit": runs.vit, "vivit": runs.vivit, "ddpm": runs.ddpm, "fit": runs.fit}
    argv = [arg.format(**names) for arg in case.argv]
    before = snapshot(tmp, runs.root)
    capfd.readouterr()  # the builders' output is not the command's
    for folder in also.lock:
        folder.chmod(0)
    try:
        with warnings.catch_warnings(record=True) as caught, read_only(*also.read_only):  # pytest hides warnings
            warnings.simplefilter("always")
            code = main(argv)  # an exception other than a VisionlabError escapes here and fails the case
    finally:
        for folder in also.lock:
            folder.chmod(0o755)
    out, err = capfd.readouterr()  # file descriptors: also what C libraries (libtiff, OpenCV) write
    lines = err.strip().splitlines()
    shown = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, SILENT_WARNINGS)]
    assert code == 2, f"exit status {code}; stderr: {err!r}"
    assert "Traceback" not in err and "Traceback" not in out
    assert len(lines) == 1 and not shown, f"stderr is not one line: {err!r}, warnings: {shown}"
    assert lines[0].startswith(f"visionlab {argv[0]}: error: "), lines[0]
    for part in (*case.expect, *also.expect):
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    assert not (tmp / MARKER).exists(), "a pickle ran code"
    after = snapshot(tmp, runs.root)
    changed = sorted(str(p) for p in before if before[p] != after.get(p))
    assert not changed, f"changed or lost: {changed}"
    assert not set(after) - set(before), f"left behind: {sorted(map(str, set(after) - set(before)))}"
    return lines[0]


@pytest.fixture
def case_folder(tmp_path_factory) -> Path:
    # A neutral name: tmp_path carries the test id (e.g. "fit-resume"), which a message quoting a path would
    # then contain, and an expected word could match the path instead of the explanation.
    return tmp_path_factory.mktemp("case")


@pytest.fixture(autouse=True)
def _reference_cache(tmp_path_factory, monkeypatch):
    # evaluate-samples caches its reference classifier; outside the folders compared before and after.
    monkeypatch.setenv("VISIONLAB_CACHE", str(tmp_path_factory.getbasetemp() / "reference-cache"))


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input(case, case_folder, runs, capfd):
    run_case(case, case_folder, runs, capfd)


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def test_an_exception_that_is_not_a_visionlab_error_escapes_main(monkeypatch, capfd):
    """What the table's "exit status 2" means: main turns a VisionlabError into one line and status 2, and lets any
    other exception through, so a loader that raised TypeError could not pass a case."""
    def raises(error):
        def shapes(*args, **kwargs):
            raise error
        return shapes

    monkeypatch.setattr(api, "shapes", raises(DataError("the sizes are wrong")))
    assert main(["shapes", "vit"]) == 2
    assert capfd.readouterr().err == "visionlab shapes: error: the sizes are wrong\n"
    monkeypatch.setattr(api, "shapes", raises(TypeError("a bug")))
    with pytest.raises(TypeError, match="a bug"):
        main(["shapes", "vit"])


def test_the_hostile_pickle_runs_code_when_unpickled_unsafely(tmp_path):
    """The marker check of the table can fail: plain pickle does run the payload and create the marker."""
    pickle.loads(pickle.dumps(RunsCode(tmp_path / MARKER)))  # the point: plain unpickling runs the payload
    assert (tmp_path / MARKER).exists()


def test_checkpoints_of_earlier_versions_and_without_a_version_still_load(runs, tmp_path):
    """The version check refuses later versions only: a run from an earlier release, or a state written without a
    version field, stays readable."""
    run = restate(copy_run(runs.fit, tmp_path), version="0.0.1")
    assert load_state(run)["version"] == "0.0.1"
    save_state(run / "checkpoint.pt", {"step": 3, "task": "fit"})
    assert load_state(run)["step"] == 3
