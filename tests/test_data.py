"""Tests for normcore.data: digits split, sample photos, patches, synthetic data, augmentation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits, load_sample_images

from normcore import data

NUM_DIGITS = 1797


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.data, d.target


@pytest.fixture(scope="module")
def split():
    return data.load_digits_split()


# --------------------------------------------------------------------------- digits


def test_split_sizes_disjoint_and_cover_everything(split):
    idx = [split.train_idx, split.val_idx, split.test_idx]
    sizes = [len(i) for i in idx]
    assert sum(sizes) == NUM_DIGITS
    assert sizes[1] == round(0.15 * NUM_DIGITS) == sizes[2]
    assert np.array_equal(np.sort(np.concatenate(idx)), np.arange(NUM_DIGITS))
    for (X, y), i in zip((split.train, split.val, split.test), idx):
        assert len(X) == len(y) == len(i)


def test_split_matches_source_images(split, digits):
    pixels, target = digits
    np.testing.assert_array_equal(split.y_test, target[split.test_idx])
    np.testing.assert_allclose(split.X_train, pixels[split.train_idx] / 16, rtol=1e-7)
    assert split.X_train.min() == 0.0 and split.X_train.max() == 1.0


def test_split_is_stratified(split, digits):
    _, target = digits
    full = np.bincount(target, minlength=10)
    for part in (split.y_train, split.y_val, split.y_test):
        expected = full * len(part) / NUM_DIGITS
        assert np.all(np.abs(np.bincount(part, minlength=10) - expected) <= 1.0)


def test_split_deterministic_per_seed_and_different_across_seeds():
    a, b = data.load_digits_split(seed=3), data.load_digits_split(seed=3)
    c = data.load_digits_split(seed=4)
    assert np.array_equal(a.test_idx, b.test_idx) and np.array_equal(a.val_idx, b.val_idx)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(np.sort(a.test_idx), np.sort(c.test_idx))
    assert not np.array_equal(np.sort(a.val_idx), np.sort(c.val_idx))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_shapes_and_dtypes(dtype):
    flat = data.load_digits_split(dtype=dtype)
    image = data.load_digits_split(dtype=dtype, flat=False)
    assert flat.X_train.shape == (len(flat.y_train), 64) and flat.X_train.dtype == dtype
    assert image.X_val.shape == (len(image.y_val), 1, 8, 8) and image.X_val.dtype == dtype
    assert flat.y_train.dtype == np.int64
    np.testing.assert_array_equal(image.X_test.reshape(-1, 64), flat.X_test)
    raw = data.load_digits_split(dtype=dtype, scale=False)
    assert raw.X_train.max() == 16.0
    np.testing.assert_array_equal(raw.X_train / 16, flat.X_train)


def test_split_as_torch():
    s = data.load_digits_split(as_torch=True, flat=False)
    assert isinstance(s.X_train, torch.Tensor) and s.X_train.dtype == torch.float32
    assert s.y_train.dtype == torch.int64 and s.X_train.shape[1:] == (1, 8, 8)
    assert isinstance(s.train_idx, np.ndarray)


def test_split_zero_validation_fraction():
    s = data.load_digits_split(val_fraction=0.0)
    assert len(s.y_val) == 0 and len(s.y_train) + len(s.y_test) == NUM_DIGITS


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"val_fraction": 0.6, "test_fraction": 0.5}, ValueError, "must be < 1"),
        ({"val_fraction": -0.1}, ValueError, "val_fraction"),
        ({"test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"test_fraction": 0.002}, ValueError, "at least 10"),
        ({"dtype": np.int64}, TypeError, "float32 or float64"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_split_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        data.load_digits_split(**kwargs)


# --------------------------------------------------------------------------- photos, patches


def test_sample_photos_offline():
    photos = data.load_sample_photos()
    raw = load_sample_images().images
    assert len(photos) == 2
    for photo, img in zip(photos, raw):
        assert photo.shape == (3, 427, 640) and photo.dtype == np.float32
        assert photo.min() >= 0.0 and photo.max() <= 1.0
        np.testing.assert_allclose(photo, img.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert data.load_sample_photos(np.float64)[0].dtype == np.float64


def test_extract_patches_shape_and_are_real_windows():
    C, H, W, p = 2, 9, 11, 3
    img = np.arange(C * H * W, dtype=np.float64).reshape(C, H, W)
    patches = data.extract_patches([img, img + 1000.0], patch_size=p, num_patches=500, rng=0)
    assert patches.shape == (500, C * p * p) and patches.dtype == np.float64
    for row in patches[:50]:
        first = row[0] % 1000  # top-left value of channel 0 gives the window position
        r, c = divmod(int(first), W)
        source = img if row[0] < 1000 else img + 1000.0
        np.testing.assert_array_equal(row, source[:, r:r + p, c:c + p].ravel())
    from_both = (patches[:, 0] >= 1000).mean()
    assert 0.3 < from_both < 0.7


def test_extract_patches_photos_grayscale_and_determinism():
    photos = data.load_sample_photos()
    a = data.extract_patches(photos, patch_size=8, num_patches=1000, rng=1)
    b = data.extract_patches(photos, patch_size=8, num_patches=1000, rng=1)
    g = data.extract_patches(photos, patch_size=8, num_patches=1000, rng=1, grayscale=True)
    assert a.shape == (1000, 192) and a.dtype == np.float32 and g.shape == (1000, 64)
    np.testing.assert_array_equal(a, b)
    assert g.min() >= 0.0 and g.max() <= 1.0 + 1e-6
    # grayscale of the same windows is the luminance combination of the colour patches
    luma = 0.299 * a[:, :64] + 0.587 * a[:, 64:128] + 0.114 * a[:, 128:]
    np.testing.assert_allclose(g, luma, atol=1e-6)


@pytest.mark.parametrize(
    "images, kwargs, err, match",
    [
        (np.zeros((3, 4, 4)), {"patch_size": 5}, ValueError, "larger than an image"),
        (np.zeros((3, 4, 4), dtype=np.int64), {}, TypeError, "float32 or float64"),
        (np.zeros((4, 4)), {}, ValueError, "3 dimensions"),
        ([], {}, TypeError, "non-empty"),
        ([np.zeros((3, 9, 9)), np.zeros((1, 9, 9))], {}, ValueError, "channel count"),
        (np.zeros((1, 9, 9)), {"grayscale": True}, ValueError, "3 channels"),
        (np.zeros((3, 9, 9)), {"num_patches": 0}, ValueError, "num_patches"),
    ],
)
def test_extract_patches_bad_input(images, kwargs, err, match):
    with pytest.raises(err, match=match):
        data.extract_patches(images, **{"patch_size": 8, "num_patches": 10, **kwargs}, rng=0)


# --------------------------------------------------------------------------- synthetic


def test_regression_covariance_spectrum_exact_and_empirical():
    lam = np.array([10.0, 3.0, 1.0, 0.1])
    X, y, w, cov = data.ill_conditioned_regression(200_000, eigenvalues=lam, rng=0)
    assert X.shape == (200_000, 4) and y.shape == (200_000,) and w.shape == (4,)
    np.testing.assert_allclose(np.linalg.eigvalsh(cov)[::-1], lam, rtol=1e-12)
    np.testing.assert_allclose(cov, cov.T)
    empirical = X.T @ X / len(X)
    np.testing.assert_allclose(empirical, cov, atol=0.03 * lam.max())
    np.testing.assert_allclose(np.linalg.eigvalsh(empirical)[::-1], lam, rtol=0.03)
    np.testing.assert_allclose(y, X @ w, rtol=1e-10, atol=1e-10)  # noise=0
    assert abs(cov[0, 1]) > 1e-3  # rotated: not axis-aligned


def test_regression_condition_number_noise_and_rotation():
    X, y, w, cov = data.ill_conditioned_regression(
        50_000, dim=5, condition_number=100.0, noise=0.5, rotate=False, rng=1
    )
    lam = np.linalg.eigvalsh(cov)
    assert lam.max() / lam.min() == pytest.approx(100.0)
    assert lam.max() == pytest.approx(1.0)
    np.testing.assert_allclose(cov, np.diag(np.geomspace(1, 0.01, 5)), atol=1e-15)
    assert np.std(y - X @ w) == pytest.approx(0.5, rel=0.02)
    X32, *_ = data.ill_conditioned_regression(10, dim=2, condition_number=3.0, rng=1,
                                              dtype=np.float32)
    assert X32.dtype == np.float32


def test_regression_deterministic():
    a = data.ill_conditioned_regression(100, dim=3, condition_number=10.0, rng=7)
    b = data.ill_conditioned_regression(100, dim=3, condition_number=10.0,
                                        rng=np.random.default_rng(7))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"eigenvalues": [1.0], "condition_number": 2.0}, ValueError, "exactly one"),
        ({}, ValueError, "exactly one"),
        ({"eigenvalues": [1.0, -1.0]}, ValueError, "positive"),
        ({"eigenvalues": [1.0, 2.0], "dim": 3}, ValueError, "does not match"),
        ({"condition_number": 10.0}, ValueError, "dim is required"),
        ({"condition_number": 0.5, "dim": 2}, ValueError, "condition_number"),
        ({"condition_number": 2.0, "dim": 2, "noise": -1.0}, ValueError, "noise"),
        ({"condition_number": 2.0, "dim": 2, "rng": "seed"}, TypeError, "rng"),
    ],
)
def test_regression_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        data.ill_conditioned_regression(10, **{"rng": 0, **kwargs})


@pytest.mark.parametrize("kind", ["blobs", "moons", "circles"])
def test_two_class_toy(kind):
    X, y = data.two_class_toy(301, kind=kind, rng=0, noise=0.0)
    assert X.shape == (301, 2) and y.shape == (301,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [150, 151]
    if kind == "circles":
        radius = np.linalg.norm(X, axis=1)
        np.testing.assert_allclose(radius, np.where(y == 0, 1.0, 0.5))
    if kind == "moons":
        np.testing.assert_allclose(np.linalg.norm(X[y == 0], axis=1), 1.0)
        assert np.all(X[y == 0, 1] >= 0) and np.all(X[y == 1, 1] <= 0.5)
    X2, y2 = data.two_class_toy(301, kind=kind, rng=0, noise=0.0)
    np.testing.assert_array_equal(X, X2)


def test_two_class_toy_bad_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        data.two_class_toy(10, kind="spirals", rng=0)


def test_positive_inputs():
    X, y, w = data.positive_inputs(1000, 4, rng=0, low=0.5, high=2.0)
    assert np.all(X >= 0.5) and np.all(X < 2.0)
    np.testing.assert_array_equal(w, [1.0, -1.0, 1.0, -1.0])
    np.testing.assert_allclose(y, X @ w)
    with pytest.raises(ValueError, match="low"):
        data.positive_inputs(10, 2, rng=0, low=-1.0)


# --------------------------------------------------------------------------- augmentation


def _image(dtype=np.float64, shape=(3, 12, 16), seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype(dtype)


AUGMENTATIONS = [
    lambda img, rng: data.horizontal_flip(img, rng=rng),
    lambda img, rng: data.random_crop_and_rescale(img, rng=rng),
    lambda img, rng: data.color_jitter(img, rng=rng),
    lambda img, rng: data.cutout(img, rng=rng, size=5),
    lambda img, rng: data.gaussian_noise(img, rng=rng, std=0.2),
    lambda img, rng: data.augment(img, rng=rng),
    lambda img, rng: data.augment(
        img, rng=rng, ops=[("cutout", {"size": 3}), ("gaussian_noise", {"std": 0.1})]
    ),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", AUGMENTATIONS)
def test_augmentation_keeps_shape_dtype_range_and_input(op, dtype):
    img = _image(dtype)
    before = img.copy()
    for seed in range(5):
        out = op(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == dtype
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert not np.shares_memory(out, img)
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize("op", AUGMENTATIONS)
def test_augmentation_deterministic_given_seed(op):
    img = _image()
    np.testing.assert_array_equal(op(img, np.random.default_rng(3)),
                                  op(img, np.random.default_rng(3)))


def test_flip_identities():
    img = _image()
    flipped = data.horizontal_flip(img, p=1.0)
    np.testing.assert_array_equal(flipped, img[:, :, ::-1])
    np.testing.assert_array_equal(data.horizontal_flip(flipped, p=1.0), img)
    np.testing.assert_array_equal(data.horizontal_flip(img, p=0.0), img)
    rng = np.random.default_rng(0)
    flips = [not np.array_equal(data.horizontal_flip(img, rng=rng), img) for _ in range(400)]
    assert 0.4 < np.mean(flips) < 0.6


def test_crop_full_scale_is_identity_and_output_size():
    img = _image()
    np.testing.assert_array_equal(data.random_crop_and_rescale(img, rng=0, scale=(1, 1)), img)
    out = data.random_crop_and_rescale(img, rng=0, scale=(0.3, 0.5), output_size=(5, 7))
    assert out.shape == (3, 5, 7)
    assert data.random_crop_and_rescale(img, rng=0, output_size=6).shape == (3, 6, 6)


@pytest.mark.parametrize("in_hw, out_hw", [((8, 8), (8, 8)), ((5, 7), (10, 14)),
                                            ((12, 9), (4, 5)), ((6, 6), (11, 3)),
                                            ((1, 4), (3, 2))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resize_bilinear_matches_torch(in_hw, out_hw, dtype):
    img = _image(dtype, (2, *in_hw))
    ours = data.resize_bilinear(img, out_hw)
    ref = F.interpolate(torch.from_numpy(img)[None], size=out_hw, mode="bilinear",
                        align_corners=False)[0].numpy()
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours, ref, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-12)


def test_crop_region_is_a_crop():
    # crop without resizing: output_size equal to the crop size gives an exact sub-image
    img = _image(shape=(1, 10, 10))
    out = data.random_crop_and_rescale(img, rng=0, scale=(0.36, 0.36), output_size=6)
    windows = np.lib.stride_tricks.sliding_window_view(img[0], (6, 6))
    assert np.any(np.all(windows == out[0], axis=(-1, -2)))


def test_color_jitter_zero_strength_is_identity_and_brightness_scales():
    img = _image() * 0.5
    np.testing.assert_allclose(data.color_jitter(img, rng=0, brightness=0.0, contrast=0.0), img)
    out = data.color_jitter(img, rng=0, brightness=0.5, contrast=0.0)
    ratio = out / img
    np.testing.assert_allclose(ratio, ratio.flat[0])
    assert 0.5 <= ratio.flat[0] <= 1.5


def test_color_jitter_contrast_keeps_mean_gray():
    img = _image(shape=(1, 20, 20)) * 0.5 + 0.25
    out = data.color_jitter(img, rng=1, brightness=0.0, contrast=0.3)
    assert out.mean() == pytest.approx(img.mean())
    assert not np.allclose(out, img)


def test_cutout_fills_a_square():
    img = _image() + 1.0  # no zeros in the input
    out = data.cutout(img, rng=0, size=4)
    zeros = out[0] == 0
    assert 0 < zeros.sum() <= 16
    rows, cols = np.nonzero(zeros)
    assert zeros[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    np.testing.assert_array_equal(out[:, ~zeros], img[:, ~zeros])


def test_gaussian_noise_statistics():
    img = np.full((1, 200, 200), 0.5)
    noisy = data.gaussian_noise(img, rng=0, std=0.05)
    assert (noisy - img).std() == pytest.approx(0.05, rel=0.02)
    np.testing.assert_array_equal(data.gaussian_noise(img, rng=0, std=0.0), img)
    unclipped = data.gaussian_noise(img, rng=0, std=2.0, clip=False)
    assert unclipped.max() > 1.0


def test_augment_accepts_callables_and_composes_in_order():
    img = _image()

    def flip(x, *, rng):
        return data.horizontal_flip(x, p=1.0)

    np.testing.assert_array_equal(data.augment(img, rng=0, ops=[flip, flip]), img)
    np.testing.assert_array_equal(data.augment(img, rng=0, ops=[]), img)


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda img: data.horizontal_flip(img[0], p=1.0), ValueError, "3 dimensions"),
        (lambda img: data.horizontal_flip(img.astype(np.int64), p=1.0), TypeError, "dtype"),
        (lambda img: data.horizontal_flip(img.tolist(), p=1.0), TypeError, "numpy.ndarray"),
        (lambda img: data.horizontal_flip(img, p=1.5), ValueError, "p must be in"),
        (lambda img: data.horizontal_flip(img, p=0.5), ValueError, "rng must be"),
        (lambda img: data.random_crop_and_rescale(img, rng=0, scale=(0.0, 1.0)), ValueError,
         "scale must be"),
        (lambda img: data.random_crop_and_rescale(img, rng=0, scale=(0.9, 0.5)), ValueError,
         "scale must be"),
        (lambda img: data.random_crop_and_rescale(img, rng=0, output_size=0), ValueError,
         "output_size"),
        (lambda img: data.random_crop_and_rescale(img, rng=None), ValueError, "rng must be"),
        (lambda img: data.color_jitter(img, rng=0, brightness=-0.1), ValueError, "brightness"),
        (lambda img: data.cutout(img, rng=0, size=0), ValueError, "size"),
        (lambda img: data.gaussian_noise(img, rng=0, std=-1.0), ValueError, "std"),
        (lambda img: data.augment(img, rng=0, ops=["rotate"]), ValueError, "unknown augmentation"),
        (lambda img: data.augment(img, rng=0, ops="cutout"), TypeError, "ops must be"),
        (lambda img: data.augment(img, rng=0, ops=[3]), TypeError, "each op"),
        (lambda img: data.resize_bilinear(img, (2, 2, 2)), ValueError, "output_size"),
    ],
)
def test_augmentation_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call(_image())


@pytest.mark.parametrize(
    ("seed", "size", "centre", "rows", "cols"),
    [
        # centre drawn by rng.integers(0, H) then rng.integers(0, W); the square spans
        # rows cy - size // 2 .. cy - size // 2 + size - 1 (and the same for columns),
        # clipped to the image. Expected pixels worked out by hand from that rule.
        (34, 4, (0, 0), [0, 1], [0, 1]),  # top-left corner: 4 of 16 pixels
        (13, 4, (7, 6), [5, 6, 7], [4, 5, 6, 7]),  # bottom-right: 12 of 16
        (29, 4, (7, 0), [5, 6, 7], [0, 1]),  # bottom-left: 6 of 16
        (34, 3, (0, 0), [0, 1], [0, 1]),  # odd size: one pixel either side of the centre
        (16, 3, (4, 4), [3, 4, 5], [3, 4, 5]),  # interior: the full 3 x 3 square
    ],
)
def test_cutout_at_the_border_fills_the_clipped_square(seed, size, centre, rows, cols):
    gen = np.random.default_rng(seed)
    assert (gen.integers(0, 8), gen.integers(0, 8)) == centre  # the centre this seed draws
    img = _image(shape=(2, 8, 8)) + 1.0  # no pixel equals the fill value
    before = img.copy()
    out = data.cutout(img, rng=seed, size=size, fill=-1.0)
    expected = np.zeros((8, 8), dtype=bool)
    expected[np.ix_(rows, cols)] = True
    for channel in range(2):
        np.testing.assert_array_equal(out[channel] == -1.0, expected)
        np.testing.assert_array_equal(out[channel][~expected], img[channel][~expected])
    np.testing.assert_array_equal(img, before)  # the input is not modified
