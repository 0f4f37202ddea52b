"""Cross-entropy: the notes' worked numbers, equality with PyTorch, label smoothing, and clear errors."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from visionlab.components.losses import cross_entropy, cross_entropy_error, one_hot
from visionlab.util.errors import ConfigError, DataError

# The textbook example: ten classes, the true class is 2.
Y_RIGHT = [0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]  # y_2 = 0.6
Y_WRONG = [0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0]  # y_2 = 0.1
T = [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]


def logits_of(p):
    # log p are logits whose softmax is p again, so the log-softmax path sees the probabilities exactly.
    return torch.log(torch.tensor(p, dtype=torch.float64))


def test_one_hot():
    assert one_hot(torch.tensor(2), 10).tolist() == T
    assert one_hot(torch.tensor([1, 0]), 3).tolist() == [[0, 1, 0], [1, 0, 0]]
    assert one_hot(torch.tensor([1, 0]), 3).dtype == torch.float32


@pytest.mark.parametrize("y, expected", [(Y_RIGHT, 0.5108256237659907), (Y_WRONG, 2.302585092994046)])
def test_log_softmax_path_gives_the_notes_numbers_exactly(y, expected):
    assert expected == pytest.approx(-math.log(y[2]), abs=1e-15)
    from_one_hot = cross_entropy(logits_of(y), one_hot(torch.tensor(2), 10).double())
    from_index = cross_entropy(logits_of(y), torch.tensor(2))
    assert from_one_hot.item() == pytest.approx(expected, abs=1e-12)
    assert from_index.item() == pytest.approx(expected, abs=1e-12)
    assert f"{from_index.item():.2f}" == ("0.51" if y is Y_RIGHT else "2.30")  # the notes' rounded values


@pytest.mark.parametrize("y, expected", [(Y_RIGHT, 0.510825457), (Y_WRONG, 2.302584093)])
def test_textbook_delta_version(y, expected):
    assert cross_entropy_error(np.array(y), np.array(T)).item() == pytest.approx(expected, abs=1e-9)
    assert cross_entropy_error(torch.tensor(y, dtype=torch.float64), 2).item() == pytest.approx(expected, abs=1e-9)
    # delta keeps log(0) away: a zero probability on the true class gives -log(1e-7), not inf
    assert cross_entropy_error(torch.tensor(y, dtype=torch.float64), 3).item() == pytest.approx(-math.log(1e-7))


def test_batch_versions_divide_by_n():
    y = torch.tensor([Y_RIGHT, Y_WRONG], dtype=torch.float64)
    mean = (0.5108256237659907 + 2.302585092994046) / 2
    assert cross_entropy(torch.log(y), torch.tensor([2, 2])).item() == pytest.approx(mean, abs=1e-12)
    assert cross_entropy(torch.log(y), torch.tensor([2, 2]), reduction="sum").item() == pytest.approx(2 * mean)
    per = cross_entropy(torch.log(y), torch.tensor([2, 2]), reduction="none")
    assert per.shape == (2,) and per[1].item() == pytest.approx(2.302585092994046)
    t = np.array([T, T])
    assert cross_entropy_error(y, t).item() == pytest.approx((0.510825457 + 2.302584093) / 2, abs=1e-9)
    assert cross_entropy_error(y, torch.tensor([2, 2])).item() == pytest.approx((0.510825457 + 2.302584093) / 2,
                                                                                 abs=1e-9)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_equals_torch_cross_entropy(smoothing):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 5, generator=g) * 3
    index = torch.randint(0, 5, (8,), generator=g)
    soft = torch.softmax(torch.randn(8, 5, generator=g), dim=1)
    for target in (index, soft, one_hot(index, 5)):
        for reduction in ("mean", "sum", "none"):
            ours = cross_entropy(logits, target, label_smoothing=smoothing, reduction=reduction)
            ref = F.cross_entropy(logits, target, label_smoothing=smoothing, reduction=reduction)
            torch.testing.assert_close(ours, ref)
    # one-hot targets and index targets are the same loss
    torch.testing.assert_close(cross_entropy(logits, one_hot(index, 5), label_smoothing=smoothing),
                               cross_entropy(logits, index, label_smoothing=smoothing))


def test_per_pixel_targets_as_in_segmentation():
    g = torch.Generator().manual_seed(1)
    logits, target = torch.randn(2, 3, 4, 5, generator=g), torch.randint(0, 3, (2, 4, 5), generator=g)
    torch.testing.assert_close(cross_entropy(logits, target), F.cross_entropy(logits, target))


def test_gradient_is_softmax_minus_target_over_n():
    logits = torch.randn(4, 6, requires_grad=True)
    target = torch.tensor([0, 5, 2, 2])
    cross_entropy(logits, target).backward()
    expected = (torch.softmax(logits.detach(), 1) - one_hot(target, 6)) / 4
    torch.testing.assert_close(logits.grad, expected)


def test_zero_probabilities_off_the_true_class_are_fine():
    logits = logits_of(Y_RIGHT).requires_grad_()  # contains log 0 = -inf
    loss = cross_entropy(logits, one_hot(torch.tensor(2), 10).double())
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert cross_entropy(logits_of(Y_RIGHT), torch.tensor(3)).item() == math.inf  # zero on the true class


def test_errors_are_clear():
    logits = torch.randn(4, 3)
    with pytest.raises(DataError, match=r"\[0, 2\]"):
        cross_entropy(logits, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(DataError, match="lie in"):
        cross_entropy(logits, torch.tensor([0, -1, 2, 0]))
    with pytest.raises(DataError, match="index targets must have shape"):
        cross_entropy(logits, torch.tensor([0, 1]))
    with pytest.raises(DataError, match="logits' shape"):
        cross_entropy(logits, torch.rand(4, 5))
    with pytest.raises(DataError, match="floating point"):
        cross_entropy(torch.ones(4, 3, dtype=torch.long), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ConfigError, match="reduction"):
        cross_entropy(logits, torch.tensor([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ConfigError, match="label_smoothing"):
        cross_entropy(logits, torch.tensor([0, 1, 2, 0]), label_smoothing=1.5)
    with pytest.raises(DataError, match="in \\[0, 9\\]"):
        one_hot(torch.tensor([10]), 10)
    with pytest.raises(DataError, match="integer"):
        one_hot(torch.tensor([1.0]), 10)
    with pytest.raises(DataError, match="probabilities"):
        cross_entropy_error(torch.tensor([-1.0, 2.0]), 0)  # logits passed where probabilities belong
    with pytest.raises(DataError, match="one-hot"):
        cross_entropy_error(torch.rand(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(DataError, match="lie in"):
        cross_entropy_error(torch.rand(2, 3), torch.tensor([0, 3]))
