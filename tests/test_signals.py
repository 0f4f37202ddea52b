"""Tests for visionlab.data.signals: grids, audio and video loading, round trips, built-ins, errors and dispatch."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from visionlab.data import ImageSignal, coordinate_grid, load_image, save_image
from visionlab.data.audio import AudioSignal, load_audio, save_audio
from visionlab.data.grid import GridSignal, ImageGridSignal, Signal, as_signal, grid_coordinates
from visionlab.data.signals import load_signal, signal_kind
from visionlab.data.video_signals import VideoSignal, load_video, save_video
from visionlab.util.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def write_frames(folder, count, shape=(6, 5, 3), names="f{}.png"):
    folder.mkdir(parents=True, exist_ok=True)
    frames = RNG.integers(0, 256, (count, *shape), dtype=np.uint8)
    for t, frame in enumerate(frames):
        save_image(folder / names.format(t), frame / 255.0)
    return frames


def raises_one_line(error, match, call, *args, **kwargs):
    with pytest.raises(error, match=match) as caught:
        call(*args, **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


# --- coordinates ---------------------------------------------------------------------------------------------------

def test_grid_1d_has_both_ends_in_order():
    coords = grid_coordinates((5,))
    assert coords.shape == (5, 1) and coords.dtype == torch.float32
    torch.testing.assert_close(coords[:, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert grid_coordinates((1,)).tolist() == [[0.0]]


def test_grid_3d_is_row_major_t_y_x():
    t, h, w = 3, 4, 5
    coords = grid_coordinates((t, h, w))
    assert coords.shape == (t * h * w, 3)
    assert coords.min() == -1 and coords.max() == 1
    def axis(n):
        return torch.linspace(-1, 1, n)
    for k in (0, 1, w, h * w, t * h * w - 1, 37):
        i, rest = divmod(k, h * w)
        j, m = divmod(rest, w)
        torch.testing.assert_close(coords[k], torch.stack([axis(t)[i], axis(h)[j], axis(w)[m]]))
    assert (grid_coordinates((2, 1, 3))[:, 1] == 0).all()  # an axis of one sample sits at 0


@pytest.mark.parametrize("shape", [(4, 7), (1, 5), (6, 1), (1, 1)])
def test_grid_2d_equals_coordinate_grid(shape):
    torch.testing.assert_close(grid_coordinates(shape), coordinate_grid(*shape), rtol=0, atol=0)


def test_grid_rejects_bad_shapes():
    for shape in [(), (0, 3), (2, -1)]:
        raises_one_line(ConfigError, "positive sizes", grid_coordinates, shape)


def test_flat_rows_match_coords():
    clip = load_video("no-time-for-that", frames=3)
    _, h, w = clip.shape
    k = (2 * h + 7) * w + 9  # frame 2, row 7, column 9
    torch.testing.assert_close(clip.flat()[k], clip.values[2, 7, 9])
    torch.testing.assert_close(clip.coords()[k], torch.tensor([1.0, -1 + 2 * 7 / (h - 1), -1 + 2 * 9 / (w - 1)]))
    torch.testing.assert_close(clip.unflat(clip.flat()), clip.values)


# --- built-in signals ----------------------------------------------------------------------------------------------

def test_builtin_chirp():
    sound = load_audio("chirp")
    assert isinstance(sound, AudioSignal) and isinstance(sound, Signal)
    assert (sound.kind, sound.shape, sound.channels, sound.sample_rate, sound.duration) == ("audio", (48000,), 1,
                                                                                           16000, 3.0)
    assert sound.values.dtype == torch.float32 and sound.source == "synth:chirp"
    assert 0.15 <= sound.values.min() < 0.2 and 0.8 < sound.values.max() <= 0.85
    torch.testing.assert_close(load_signal("chirp").values, sound.values, rtol=0, atol=0)  # deterministic
    assert sound.coords().shape == (48000, 1)
    # the fundamental sweeps 100 Hz -> 2 kHz: over the first 0.1 s it is 100-163 Hz, over the last 1937-2000 Hz
    def peak(x):
        return np.argmax(np.abs(np.fft.rfft(x - 0.5))) * 10  # 0.1 s windows: bins of 10 Hz
    assert 100 <= peak(sound.values[:1600, 0].numpy()) <= 170
    assert 1930 <= peak(sound.values[-1600:, 0].numpy()) <= 2000


def test_builtin_video():
    clip = load_signal("no-time-for-that")
    assert isinstance(clip, VideoSignal) and clip.kind == "video"
    assert (clip.shape, clip.channels) == ((24, 25, 14), 3)
    assert clip.fps == pytest.approx(1000 / 70) and clip.frame_duration == pytest.approx(0.07)
    assert clip.values.dtype == torch.float32 and 0 <= clip.values.min() and clip.values.max() <= 1
    assert clip.flat().shape == (24 * 25 * 14, 3) and clip.coords().shape == (24 * 25 * 14, 3)
    short = load_video("no-time-for-that", frames=5, size=28)  # shorter side 14 -> 28
    assert short.shape == (5, 50, 28)
    torch.testing.assert_close(load_video("no-time-for-that", frames=5).values, clip.values[:5])
    assert load_video("no-time-for-that", size="10x7", fps=25).shape == (24, 10, 7)


def test_image_through_the_common_interface():
    image = load_image("camera", size=16)
    signal = as_signal(image)
    assert isinstance(signal, ImageGridSignal) and isinstance(signal, Signal)
    assert (signal.kind, signal.shape, signal.channels, signal.bit_depth) == ("image", (16, 16), 1, 8)
    assert signal.values is image.values and as_signal(signal) is signal
    torch.testing.assert_close(signal.coords(), coordinate_grid(16, 16))
    torch.testing.assert_close(signal.flat(), image.flat())
    assert isinstance(signal.to_image(), ImageSignal)
    loaded = load_signal("camera", size=16)
    assert isinstance(loaded, GridSignal) and loaded.kind == "image"


# --- audio files ---------------------------------------------------------------------------------------------------

def test_wav_16bit_round_trip_stereo(tmp_path):
    pcm = RNG.integers(-32768, 32768, (1000, 2), dtype=np.int16)
    pcm[:4] = [[-32768, 32767], [0, -1], [1, 0], [32767, -32768]]
    wavfile.write(tmp_path / "in.wav", 8000, pcm)
    sound = load_audio(tmp_path / "in.wav")
    assert (sound.shape, sound.channels, sound.sample_rate, sound.name) == ((1000,), 2, 8000, "in")
    np.testing.assert_allclose(sound.values.numpy(), (pcm / 32768 + 1) / 2, atol=1e-7)
    written = sound.save(tmp_path / "out", sound.values)  # ".wav" appended
    assert written == [tmp_path / "out.wav"]
    rate, back = wavfile.read(written[0])
    assert rate == 8000 and back.dtype == np.int16 and back.shape == (1000, 2)
    assert np.abs(back.astype(int) - pcm).max() <= 1


@pytest.mark.parametrize("dtype, low, high, expect_low, expect_high", [
    (np.uint8, 0, 255, 0.0, 255 / 256),  # (v - 128) / 128
    (np.int32, -2 ** 31, 2 ** 31 - 1, 0.0, 1.0),
    (np.float32, -1.0, 1.0, 0.0, 1.0),
])
def test_wav_sample_types(tmp_path, dtype, low, high, expect_low, expect_high):
    samples = np.array([low, high, low, high], dtype=dtype)
    wavfile.write(tmp_path / "x.wav", 100, samples)
    values = load_audio(tmp_path / "x.wav").values[:, 0].numpy()
    np.testing.assert_allclose(values[:2], [expect_low, expect_high], atol=1e-6)


def test_audio_options(tmp_path):
    rate = 8000
    t = np.arange(2 * rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 200 * t)
    wavfile.write(tmp_path / "tone.wav", rate, np.stack([tone, -tone], 1).astype(np.float32))
    assert load_audio(tmp_path / "tone.wav", seconds=0.5).shape == (4000,)
    assert load_audio(tmp_path / "tone.wav", seconds=10).shape == (16000,)  # at most the whole sound
    mono = load_audio(tmp_path / "tone.wav", mono=True)
    assert mono.channels == 1 and torch.allclose(mono.values, torch.tensor(0.5), atol=1e-6)  # +x and -x average to 0
    low = load_audio(tmp_path / "tone.wav", seconds=1, sample_rate=4000)
    assert (low.shape, low.sample_rate) == ((4000,), 4000)
    expected = (0.5 * np.sin(2 * np.pi * 200 * np.arange(4000) / 4000) + 1) / 2
    assert np.abs(low.values[200:-200, 0].numpy() - expected[200:-200]).max() < 0.01  # away from the edges
    assert load_audio("chirp", sample_rate=8000).shape == (24000,)
    raises_one_line(ConfigError, "seconds must be", load_audio, "chirp", seconds=0)
    raises_one_line(ConfigError, "sample_rate must be", load_audio, "chirp", sample_rate=44.1)


def test_save_audio_checks_values(tmp_path):
    save_audio(tmp_path / "a.wav", np.array([0.0, 0.5, 1.0]), 100)
    assert wavfile.read(tmp_path / "a.wav")[1].tolist() == [-32768, 0, 32767]
    raises_one_line(DataError, "NaN", save_audio, tmp_path / "b.wav", np.array([0.0, np.nan]), 100)
    raises_one_line(DataError, r"expected \(T, C\)", save_audio, tmp_path / "b.wav", np.zeros((2, 2, 2)), 100)


# --- video files ---------------------------------------------------------------------------------------------------

def test_frame_folder_natural_order_and_limit(tmp_path):
    frames = write_frames(tmp_path / "clip", 12, names="frame{}.png")  # frame2 must come before frame10
    (tmp_path / "clip" / "notes.txt").write_text("not a frame")
    clip = load_video(tmp_path / "clip")
    assert (clip.shape, clip.channels, clip.fps, clip.name) == ((12, 6, 5), 3, 10.0, "clip")
    np.testing.assert_allclose(clip.values.numpy(), frames / 255.0, atol=1e-7)
    np.testing.assert_allclose(load_video(tmp_path / "clip", frames=3).values.numpy(), frames[:3] / 255, atol=1e-7)


def test_video_round_trip_frames_and_gif(tmp_path):
    # few colours per frame, so GIF's 256-colour palette holds them exactly; distinct frames, so none are merged
    palette = RNG.integers(0, 256, (4, 3), dtype=np.uint8)
    pixels = palette[RNG.integers(0, 4, (5, 8, 6))]  # (T, H, W, 3)
    values = torch.from_numpy(pixels / 255.0).float()
    source = VideoSignal(values=values, name="x", source="memory", fps=20.0)
    folder, gif = source.save(tmp_path / "out", values)
    assert gif == tmp_path / "out" / "out.gif" and gif.is_file()
    again = load_video(folder)
    torch.testing.assert_close(again.values, values, rtol=0, atol=1e-6)
    from_gif = load_video(gif)
    assert from_gif.shape == (5, 8, 6) and from_gif.fps == pytest.approx(20.0)
    assert (from_gif.values - values).abs().max() <= 2 / 255

    save_video(folder, values[:2], fps=20)  # a shorter save replaces the old frames
    assert load_video(folder).shape == (2, 8, 6)


def test_grey_video_saves_and_gif_reads_as_rgb(tmp_path):
    values = torch.rand(3, 4, 5, 1)
    save_video(tmp_path / "g", values, fps=5)
    assert load_video(tmp_path / "g").channels == 1
    rgb = load_video(tmp_path / "g" / "g.gif")
    assert rgb.channels == 3 and torch.equal(rgb.values[..., 0], rgb.values[..., 2])


def test_npy_clips(tmp_path):
    raw = RNG.integers(0, 256, (7, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "c.npy", raw)
    clip = load_signal(tmp_path / "c.npy", frames=5)
    assert isinstance(clip, VideoSignal) and (clip.shape, clip.channels) == ((5, 4, 3), 1)
    np.testing.assert_allclose(clip.values[..., 0].numpy(), raw[:5] / 255, atol=1e-7)
    np.save(tmp_path / "f.npy", np.full((2, 3, 3, 3), 0.25, np.float32))
    assert load_video(tmp_path / "f.npy").channels == 3


# --- errors ----------------------------------------------------------------------------------------------------------

def test_missing_and_unknown(tmp_path):
    raises_one_line(DataError, "no such WAV file or built-in audio: .*nope.wav", load_audio, tmp_path / "nope.wav")
    raises_one_line(DataError, "no such video .*nope.gif", load_video, tmp_path / "nope.gif")
    message = raises_one_line(DataError, "no such file or built-in signal: chrip", load_signal, "chrip")
    assert "chirp" in message and "no-time-for-that" in message and "astronaut" in message
    raises_one_line(DataError, r"built-in audio: beep \(built-in: chirp\)", load_audio, "beep")
    raises_one_line(DataError, "built-in: no-time-for-that", load_video, "no-time")
    for loader in (load_audio, load_video, load_signal):
        raises_one_line(DataError, "the source is an empty string", loader, "")


def test_empty_files(tmp_path):
    for name, loader in [("e.wav", load_audio), ("e.gif", load_video), ("e.npy", load_video)]:
        (tmp_path / name).write_bytes(b"")
        raises_one_line(DataError, f"{name}: the file is empty", loader, tmp_path / name)


def test_bad_wav_files(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is no RIFF header at all" * 4)
    raises_one_line(DataError, "bad.wav: not a readable WAV file", load_audio, bad)
    wavfile.write(bad, 8000, np.arange(1000, dtype=np.int16))
    whole = bad.read_bytes()
    bad.write_bytes(whole[:30])  # cut inside the header
    raises_one_line(DataError, "bad.wav: not a readable WAV file", load_audio, bad)
    bad.write_bytes(whole[:500])  # cut inside the samples
    raises_one_line(DataError, "bad.wav: the file is truncated", load_audio, bad)
    wavfile.write(bad, 8000, np.zeros(0, np.int16))
    raises_one_line(DataError, r"bad.wav has no samples \(zero length\)", load_audio, bad)
    wavfile.write(bad, 8000, np.array([0.0, 1.5], np.float32))
    raises_one_line(DataError, r"bad.wav has float samples in \[0, 1.5\], expected \[-1, 1\]", load_audio, bad)
    wavfile.write(bad, 8000, np.array([0.0, np.nan], np.float32))
    raises_one_line(DataError, "bad.wav contains NaN", load_audio, bad)


def test_bad_gif_files(tmp_path):
    save_video(tmp_path / "v", torch.rand(4, 16, 16, 3), fps=10)
    whole = (tmp_path / "v" / "v.gif").read_bytes()
    bad = tmp_path / "bad.gif"
    bad.write_bytes(b"GIF89a but then nothing sensible" * 3)
    raises_one_line(DataError, "bad.gif: ", load_video, bad)
    bad.write_bytes(b"\x00\x01 random bytes" * 10)
    raises_one_line(DataError, "bad.gif: not a GIF image", load_video, bad)
    bad.write_bytes(whole[:len(whole) // 2])
    raises_one_line(DataError, "bad.gif: the GIF is truncated or corrupt", load_video, bad)
    Image.new("RGB", (4, 4)).save(tmp_path / "png.gif", format="PNG")  # a PNG named .gif
    raises_one_line(DataError, "png.gif: the file is PNG, not a GIF", load_video, tmp_path / "png.gif")


def test_bad_frame_folders_and_arrays(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no frames here")
    raises_one_line(DataError, "empty: a clip folder without frame images", load_video, tmp_path / "empty")
    write_frames(tmp_path / "mixed", 3)
    save_image(tmp_path / "mixed" / "f3.png", np.zeros((7, 5, 3)))
    raises_one_line(DataError, r"f3.png: frame is 7x5, but f0.png of the same clip is 6x5", load_video,
                    tmp_path / "mixed")
    write_frames(tmp_path / "grey", 2)
    save_image(tmp_path / "grey" / "f2.png", np.zeros((6, 5, 1)))
    raises_one_line(DataError, "f2.png: frame has 1 channels, but f0.png of the same clip has 3", load_video,
                    tmp_path / "grey")
    nan = np.zeros((4, 3, 3), np.float32)
    nan[2, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    raises_one_line(DataError, "nan.npy: frame 2 contains NaN", load_video, tmp_path / "nan.npy")
    np.save(tmp_path / "flat.npy", np.zeros((4, 3), np.uint8))
    raises_one_line(DataError, r"flat.npy: shape \(4, 3\); expected \(T, H, W\)", load_video, tmp_path / "flat.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    raises_one_line(DataError, "junk.npy: cannot be read", load_video, tmp_path / "junk.npy")
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 10)
    raises_one_line(DataError, "clip.mp4: expected a .gif, a .npy or a folder", load_video, tmp_path / "clip.mp4")


def test_bad_options():
    raises_one_line(ConfigError, "frames must be a positive integer", load_video, "no-time-for-that", frames=0)
    raises_one_line(ConfigError, "size must be", load_video, "no-time-for-that", size="big")
    raises_one_line(ConfigError, "fps must be", load_video, "no-time-for-that", fps=-1)
    raises_one_line(ConfigError, "size does not apply to audio", load_signal, "chirp", size=64)
    raises_one_line(ConfigError, "seconds does not apply to image", load_signal, "camera", seconds=1)
    raises_one_line(ConfigError, "kind must be", load_signal, "camera", kind="sound")


# --- dispatch ------------------------------------------------------------------------------------------------------

def test_dispatch_by_name_and_extension(tmp_path):
    (tmp_path / "folder").mkdir()
    cases = {"song.wav": "audio", "SONG.WAV": "audio", "anim.gif": "video", "clip.npy": "video",
             str(tmp_path / "folder"): "video", "photo.png": "image", "photo.jpg": "image", "chirp": "audio",
             "no-time-for-that": "video", "astronaut": "image"}
    for spec, kind in cases.items():
        assert signal_kind(spec) == kind, spec

    wavfile.write(tmp_path / "s.wav", 100, np.zeros(10, np.int16))
    np.save(tmp_path / "v.npy", np.zeros((2, 3, 3), np.uint8))
    save_image(tmp_path / "p.png", np.zeros((3, 4, 3)))
    write_frames(tmp_path / "folder", 2)
    expected = {"s.wav": AudioSignal, "v.npy": VideoSignal, "p.png": ImageGridSignal, "folder": VideoSignal}
    for name, cls in expected.items():
        signal = load_signal(tmp_path / name)
        assert type(signal) is cls and signal.flat().shape == (signal.num_samples, signal.channels)
        assert signal.coords().shape == (signal.num_samples, len(signal.shape))
    # a file named like a built-in wins; kind= overrides the guess
    wavfile.write(tmp_path / "chirp", 100, np.zeros(10, np.int16))
    assert load_signal(tmp_path / "chirp", kind="audio").shape == (10,)


def test_image_signal_save(tmp_path):
    signal = load_signal("camera", size=8)
    (path,) = signal.save(tmp_path / "recon", signal.values)
    assert path == tmp_path / "recon.png"
    torch.testing.assert_close(load_image(path).values, signal.values, rtol=0, atol=1 / 255)
