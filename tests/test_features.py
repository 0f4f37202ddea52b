"""Hand-made features and classic learners: HOG, SIFT, dense SIFT, pooling, pipelines, and the features command."""

import hashlib
import json
import os

import joblib
import numpy as np
import pytest
from skimage.feature import hog

import visionlab as vl
from visionlab.cli import main
from visionlab.components.features import HogFeatures, LocalFeatures, build_extractor
from visionlab.data.datasets import digits, faces, read_grey
from visionlab.data.images import save_image
from visionlab.models.classic import build_pipeline, load_pipeline, save_pipeline
from visionlab.util.errors import ConfigError, DataError


def test_hog_matches_scikit_image_and_its_length():
    image = np.random.default_rng(0).random((32, 32))
    features = HogFeatures().transform(image[None])
    expected = hog(image, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")
    assert features.shape == (1, 3 * 3 * 2 * 2 * 9) and np.allclose(features[0], expected, atol=1e-6)
    assert HogFeatures().transform(digits().images[:2]).shape == (2, 324)  # 8 x 8 digits upscaled to 32 x 32


def test_hog_svm_on_digits_reaches_99_3_percent():
    train, test = digits().split(test_size=0.25, seed=0)
    pipeline = build_pipeline(HogFeatures(), "svm").fit(train.images, train.labels)
    assert pipeline.score(test.images, test.labels) >= 0.993


def test_knn_learns_faces():
    train, test = faces().split(test_size=0.25, seed=0)
    pipeline = build_pipeline(HogFeatures(), "knn").fit(train.images, train.labels)
    assert pipeline.score(test.images, test.labels) > 0.85


def test_dense_sift_grid_and_descriptors():
    extractor = LocalFeatures(detector="dense-sift", min_side=64, grid_step=8, patch_size=16)
    xy, diameter, descriptors = extractor.keypoints_and_descriptors(np.random.default_rng(0).random((64, 64)))
    assert len(xy) == 7 * 7 and descriptors.shape == (49, 128) and np.all(diameter == 16)
    assert xy[:, 0].min() == 8 and xy[:, 0].max() == 56


def test_dense_surf_grid_and_descriptors():
    extractor = LocalFeatures(detector="dense-surf", min_side=64, grid_step=8, dense_scales=(0.8, 1.6))
    xy, diameter, descriptors = extractor.keypoints_and_descriptors(np.random.default_rng(0).random((8, 8)))
    assert len(xy) == 8 * 8 * 2 and descriptors.shape == (128, 64)  # the 8 x 8 image upscaled to 64 x 64
    np.testing.assert_allclose(np.unique(diameter), [16, 32])  # 20 s: the descriptor square's side
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1, atol=1e-5)


def test_dense_surf_command_on_small_images(tmp_path, capsys):
    # 16 x 16 images of horizontal or vertical stripes: too small and too regular for a detector, easy for a grid
    rng = np.random.default_rng(0)
    for name, axis in (("rows", 0), ("columns", 1)):
        for i in range(12):
            stripes = 0.5 + 0.4 * np.sin(np.arange(16) * (1.2 + 0.1 * rng.random()) + rng.random() * 6)
            image = np.repeat(stripes[:, None], 16, 1) if axis == 0 else np.repeat(stripes[None], 16, 0)
            noisy = np.clip(image + 0.05 * rng.random((16, 16)), 0, 1)
            save_image(tmp_path / "data" / name / f"{i}.png", noisy[..., None])
    assert main(["features", "--data", str(tmp_path / "data"), "--image-size", "16", "--extractor", "dense-surf",
                 "--vocabulary", "16", "--out", str(tmp_path)]) == 0
    assert "accuracy" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "features" / "data-dense-surf-svm" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9


def test_sift_finds_keypoints_on_a_photo():
    image = vl.load_image("camera", size=128).values.numpy()[..., 0]
    xy, diameter, descriptors = LocalFeatures(detector="sift").keypoints_and_descriptors(image)
    assert len(xy) > 20 and descriptors.shape == (len(xy), 128)


@pytest.mark.parametrize("encoding", ["bow", "vlad"])
def test_pooling_gives_one_normalised_vector_per_image(encoding):
    images = digits().images[:60]
    extractor = LocalFeatures(detector="dense-sift", encoding=encoding, vocabulary=16).fit(images)
    features = extractor.transform(images[:5])
    if encoding == "bow":
        assert features.shape == (5, 16) and np.allclose(features.sum(1), 1)
    else:
        assert features.shape == (5, 16 * 128) and np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)


def test_no_keypoints_anywhere_is_a_clear_error():
    flat = np.full((4, 32, 32), 0.5, dtype=np.float32)  # nothing for a detector to find
    with pytest.raises(DataError, match="sift found no keypoints in any of the 4 training images"):
        LocalFeatures(detector="sift").fit(flat)


def test_unknown_names():
    with pytest.raises(ConfigError, match="unknown extractor"):
        build_extractor("orb")
    with pytest.raises(ConfigError, match="unknown classifier"):
        build_pipeline(HogFeatures(), "forest")


def test_saved_pipeline_round_trip_and_tamper_check(tmp_path):
    train, test = faces().split(seed=0)
    pipeline = build_pipeline(HogFeatures(), "svm").fit(train.images, train.labels)
    path = save_pipeline(tmp_path / "p.joblib", pipeline, metadata={"class_names": train.class_names})
    loaded = load_pipeline(path)
    assert np.array_equal(loaded.predict(test.images), pipeline.predict(test.images))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataError, match="does not match the digest"):
        load_pipeline(path)


def test_features_command_writes_its_outputs(tmp_path, capsys):
    assert main(["features", "--data", "faces", "--extractor", "hog", "--classifier", "svm", "--out",
                 str(tmp_path)]) == 0
    assert "accuracy" in capsys.readouterr().out
    run = tmp_path / "features" / "faces-hog-svm"
    for name in ("config.yaml", "metrics.json", "summary.json", "confusion.png", "features.png",
                 "pipeline.joblib", "pipeline.joblib.json"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9 and np.array(metrics["confusion"]).sum() == 50


def test_features_command_on_a_folder_and_its_errors(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name, value in (("dark", 0.2), ("bright", 0.8)):
        for i in range(8):
            save_image(tmp_path / "data" / name / f"{i}.png", np.clip(value + 0.1 * rng.random((24, 24, 1)), 0, 1))
    assert main(["features", "--data", str(tmp_path / "data"), "--image-size", "32", "--out", str(tmp_path)]) == 0
    (tmp_path / "empty").mkdir()
    (tmp_path / "single" / "only").mkdir(parents=True)
    save_image(tmp_path / "single" / "only" / "a.png", rng.random((8, 8, 3)))
    capsys.readouterr()
    for data, message in ((tmp_path / "empty", "no class sub-folders"), (tmp_path / "single", "one class")):
        assert main(["features", "--data", str(data), "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_features_command_with_no_keypoints_anywhere_exits_2(tmp_path, capsys):
    for name in ("a", "b"):
        for i in range(4):
            save_image(tmp_path / "flat" / name / f"{i}.png", np.full((32, 32, 1), 0.5))
    assert main(["features", "--data", str(tmp_path / "flat"), "--extractor", "sift", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "found no keypoints in any of the 6 training images" in err and len(err.strip().splitlines()) == 1


def test_predict_reads_a_features_run_and_matches_its_pipeline(tmp_path, capsys):
    assert main(["features", "--data", "digits", "--extractor", "hog", "--classifier", "svm", "--quiet", "--out",
                 str(tmp_path)]) == 0
    run = tmp_path / "features" / "digits-hog-svm"
    data = digits()
    files = []
    for i in range(4):
        files.append(tmp_path / f"digit{i}.png")
        save_image(files[-1], data.images[i])
    pipeline = load_pipeline(run / "pipeline.joblib")
    again = np.stack([read_grey(f, data.images.shape[1:3]) for f in files])
    expected = [data.class_names[k] for k in pipeline.predict(again)]
    rows = vl.predict(str(run), [str(f) for f in files])
    assert [r["class"] for r in rows] == expected and [r["file"] for r in rows] == [str(f) for f in files]
    assert expected == [data.class_names[k] for k in data.labels[:4]]  # the training images themselves: right
    capsys.readouterr()
    assert main(["predict", str(run), *map(str, files)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{f}: {c}" for f, c in zip(files, expected)]
    assert main(["features", "--extractor", "hog", "--out", str(tmp_path), "--predict", *map(str, files)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{f}: {c}" for f, c in zip(files, expected)]
    assert [r["class"] for r in vl.features_predict(files[:1], "digits", out=str(tmp_path))] == expected[:1]
    assert main(["predict", str(tmp_path / "features"), str(files[0])]) == 2  # a folder without a run
    assert main(["features", "--classifier", "knn", "--out", str(tmp_path), "--predict", str(files[0])]) == 2
    assert "digits-hog-knn" in capsys.readouterr().err


def test_a_pipeline_file_naming_other_functions_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return os.system, ("echo unpickled > " + str(tmp_path / "ran"),)

    path = tmp_path / "p.joblib"
    joblib.dump(Evil(), path)
    (tmp_path / "p.joblib.json").write_text(json.dumps({"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}))
    with pytest.raises(DataError, match=r"refused to unpickle (posix|os|nt)\.system"):
        load_pipeline(path)
    assert not (tmp_path / "ran").exists()
