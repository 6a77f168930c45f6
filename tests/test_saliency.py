"""Training-free saliency maps, combination, masks and regions of interest, and ``adatok saliency``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from adatok import AdatokError
from adatok.cli import app
from adatok.core.errors import ImageFormatError, ImageReadError
from adatok.core.imageio import read_image, write_image
from adatok.core.saliency import (AUTO_WEIGHTS, METHODS, SaliencyError, centre_prior, combine,
                                  gradient_entropy, normalise, read_mask, roi_from, saliency,
                                  spectral_residual, write_map)
from adatok.datasets import SAMPLE_IMAGES

MASKS = Path(__file__).parent / "data" / "masks"
runner = CliRunner()


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _square(h: int = 64, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """A bright square on a flat dark background, and the square's mask."""
    img = np.full((h, w), 40, np.uint8)
    inside = np.zeros((h, w), bool)
    inside[20:36, 44:60] = True
    img[inside] = 230
    return img, inside


def _maps(img: np.ndarray) -> dict[str, np.ndarray]:
    out = {"spectral_residual": spectral_residual(img), "gradient_entropy": gradient_entropy(img),
           "centre_prior": centre_prior(img.shape)}
    for method in METHODS:
        out[f"saliency {method}"] = saliency(img, method)
    return out


# --- every map: H x W float in [0, 1] ------------------------------------------------------------


@pytest.mark.parametrize("shape", [(48, 64), (48, 64, 1), (48, 64, 3), (37, 53, 3), (1, 1), (1, 7),
                                   (7, 1, 3), (2, 3), (300, 17)])
def test_every_map_is_h_x_w_float_in_unit_range(shape):
    img = _image(shape)
    for name, m in _maps(img).items():
        assert m.shape == shape[:2], name
        assert m.dtype == np.float64, name
        assert np.isfinite(m).all(), name
        assert m.min() >= 0.0 and m.max() <= 1.0, name


def test_flat_image_has_no_saliency_but_a_centre_prior():
    img = np.full((20, 30, 3), 128, np.uint8)
    assert not spectral_residual(img).any()
    assert not gradient_entropy(img).any()
    assert saliency(img, "centre").max() == 1.0
    # auto: only the centre prior has contrast, so auto is the stretched centre prior
    np.testing.assert_allclose(saliency(img), normalise(centre_prior(img.shape)), atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 2), (2, 1), (2, 2, 3)])
def test_a_tiny_flat_image_is_as_salient_everywhere_as_the_centre_of_a_larger_one(shape):
    """Found by an outside user: ``saliency(img, "auto")`` of a flat 1 x 1 or 2 x 2 image was all 0,
    where a larger flat image's is its centre prior, 1 at the centre pixels: every pixel of these is a
    centre pixel (their centre prior is all 1, with no contrast to stretch). Now all 1, uniform, as
    their centre prior; and ``--roi auto`` with a quality target inside the region takes them (it
    was refused: "the region of interest is empty")."""
    import adatok
    from adatok import Quality

    img = np.full(shape, 77, np.uint8)
    np.testing.assert_array_equal(saliency(img), np.ones(shape[:2]))
    np.testing.assert_array_equal(saliency(img), centre_prior(shape))
    larger = saliency(np.full((8, 8), 77, np.uint8))  # (the same at the centre of a larger flat image)
    assert larger[3:5, 3:5].min() == 1.0 and larger.min() == 0.0
    seq, = adatok.load("wavelet").encode([img], Quality(psnr=30, region="roi"), roi=["auto"])
    assert adatok.load("wavelet").decode([seq])[0].shape == img.shape


def test_maps_are_deterministic_and_do_not_touch_the_image():
    img = _image((33, 41, 3))
    before = img.copy()
    np.testing.assert_array_equal(saliency(img), saliency(img))
    np.testing.assert_array_equal(img, before)


def test_gray_and_rgb_of_the_same_gray_image_agree():
    gray = _image((40, 50))
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    for method in METHODS:
        np.testing.assert_allclose(saliency(gray, method), saliency(rgb, method), atol=1e-9)


# --- what the maps pick out ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(64, 80), (200, 260)])  # below and above the 64-pixel working size
def test_spectral_residual_puts_more_mass_on_a_bright_square(size):
    img, inside = _square(*size) if size == (64, 80) else _big_square(*size)
    m = spectral_residual(img)
    assert m[inside].mean() > 2 * m[~inside].mean()


def _big_square(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((h, w, 3), (30, 60, 90), np.uint8)
    inside = np.zeros((h, w), bool)
    inside[60:110, 150:200] = True
    img[inside] = (250, 240, 200)
    return img, inside


def test_gradient_entropy_prefers_texture_to_flat():
    img = np.full((60, 90), 100, np.uint8)
    img[:, 45:] = _image((60, 45), seed=1)  # right half textured
    m = gradient_entropy(img)
    assert m[:, 60:].mean() > 0.5 > m[:, :30].mean()


@pytest.mark.parametrize("shape", [(31, 45), (30, 44), (1, 7), (1, 1), (8, 1)])
def test_centre_prior_peaks_at_the_centre(shape):
    m = centre_prior(shape)
    h, w = shape
    assert m.max() == pytest.approx(1.0)
    peak = np.argwhere(m == m.max())
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    assert np.all(np.abs(peak - centre) <= 0.5)
    # falls off away from the centre, symmetric
    assert m[0, 0] <= m[h // 2, w // 2]
    np.testing.assert_allclose(m, m[::-1, ::-1])
    assert centre_prior((h, w, 3)).shape == (h, w)


def test_centre_prior_bad_arguments():
    for bad in [(0, 5), (5,), "ab", (2.5, 3), None, (True, 3)]:
        with pytest.raises(ImageFormatError, match="shape"):
            centre_prior(bad)
    with pytest.raises(SaliencyError, match="sigma"):
        centre_prior((4, 4), sigma=0)


# --- combine -------------------------------------------------------------------------------------


def test_combine_is_the_normalised_weighted_mean():
    rng = np.random.default_rng(3)
    a, b, c = (rng.random((9, 11)) for _ in range(3))
    np.testing.assert_allclose(combine([a, b, c], [2, 1, 0]), normalise((2 * a + b) / 3))
    np.testing.assert_allclose(combine([a, b]), normalise((a + b) / 2))
    # only ratios matter
    np.testing.assert_allclose(combine([a, b], [1, 3]), combine([a, b], [10, 30]))
    # a single map (also given bare) is just normalised
    np.testing.assert_allclose(combine([5 * a + 2]), normalise(a))
    np.testing.assert_allclose(combine(a), normalise(a))
    # no contrast -> zeros
    assert not combine([np.full((3, 4), 0.7)]).any()
    m = combine([a, b])
    assert m.min() == 0.0 and m.max() == 1.0


def test_auto_is_combine_of_the_three_with_the_documented_weights():
    img = _image((40, 52, 3), seed=5)
    expected = combine([spectral_residual(img), gradient_entropy(img), centre_prior(img.shape)],
                       [AUTO_WEIGHTS["spectral"], AUTO_WEIGHTS["gradient"], AUTO_WEIGHTS["centre"]])
    np.testing.assert_allclose(saliency(img, "auto"), expected)
    np.testing.assert_allclose(saliency(img), expected)


def test_combine_errors():
    a = np.zeros((4, 5))
    with pytest.raises(SaliencyError, match="at least one"):
        combine([])
    with pytest.raises(ImageFormatError, match="different shapes"):
        combine([a, np.zeros((5, 4))])
    with pytest.raises(SaliencyError, match="one weight per map"):
        combine([a, a], [1])
    for bad in ([-1, 2], [0, 0], [np.nan, 1]):
        with pytest.raises(SaliencyError, match="weights"):
            combine([a, a], bad)
    with pytest.raises(ImageFormatError, match="NaN"):
        combine([np.full((2, 2), np.nan)])


# --- methods --------------------------------------------------------------------------------------


def test_bad_method_error_names_the_choices():
    img = _image((8, 8))
    with pytest.raises(SaliencyError, match="unknown saliency method 'sharp'.*auto, spectral, gradient, centre"):
        saliency(img, "sharp")
    assert isinstance(SaliencyError("x"), AdatokError)
    np.testing.assert_array_equal(saliency(img, "center"), saliency(img, "centre"))


def test_bad_image_is_an_image_format_error():
    with pytest.raises(ImageFormatError, match="float"):
        saliency(np.zeros((8, 8)))
    with pytest.raises(ImageFormatError, match="channels"):
        spectral_residual(np.zeros((8, 8, 4), np.uint8))


# --- masks -----------------------------------------------------------------------------------------


def test_write_map_then_read_mask_round_trips(tmp_path):
    m = centre_prior((23, 31))
    path = tmp_path / "map.png"
    write_map(path, m)
    assert read_image(path).shape == (23, 31, 1)  # 8-bit gray PNG
    with Image.open(path) as im:
        assert im.mode == "L" and im.format == "PNG"
    back = read_mask(path, (23, 31))
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, m, atol=1 / 510 + 1e-12)
    assert not list(tmp_path.glob("*.tmp*"))  # nothing half-written left behind


def test_read_mask_rule_gray_levels_and_brightest_channel(tmp_path):
    gray = np.array([[0, 51, 255]], np.uint8)
    write_image(tmp_path / "g.png", gray)
    np.testing.assert_allclose(read_mask(tmp_path / "g.png"), [[0, 0.2, 1]])
    rgb = np.array([[[0, 0, 0], [255, 0, 0], [0, 102, 51]]], np.uint8)
    write_image(tmp_path / "c.png", rgb)
    np.testing.assert_allclose(read_mask(tmp_path / "c.png"), [[0, 1, 0.4]])


def test_read_mask_rejects_transparency(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[1:3, 1:3] = 255  # opaque white square on a transparent background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with pytest.raises(ImageFormatError, match="transparen"):
        read_mask(tmp_path / "a.png")
    rgba[..., 3] = 255  # fully opaque RGBA is fine
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b.png")
    assert read_mask(tmp_path / "b.png").sum() == 4


def test_read_mask_shape_mismatch_error_and_resize(tmp_path):
    path = tmp_path / "m.png"
    write_map(path, np.ones((10, 20)))
    with pytest.raises(ImageFormatError, match=r"10x20 \(H x W\) but the image is 20x40.*resize=True"):
        read_mask(path, (20, 40))
    with pytest.raises(ImageFormatError):
        read_mask(path, (20, 40, 3))
    m = read_mask(path, (20, 40, 3), resize=True)
    assert m.shape == (20, 40) and np.all(m == 1)


def test_read_mask_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_mask(tmp_path / "nope.png")


@pytest.mark.parametrize("name", SAMPLE_IMAGES)
def test_bundled_masks_fit_their_photos(name):
    from skimage import data

    photo = getattr(data, name)()
    m = read_mask(MASKS / f"{name}.png", photo.shape)
    assert set(np.unique(m)) == {0.0, 1.0}
    assert 0.02 < m.mean() < 0.5  # a subject, not the whole frame


# --- roi_from --------------------------------------------------------------------------------------


def test_roi_from_every_kind_of_spec(tmp_path):
    img = _image((12, 16, 3))
    assert roi_from(None, img) is None
    for method in METHODS:
        np.testing.assert_array_equal(roi_from(method, img), saliency(img, method))
    mask = np.zeros((12, 16), bool)
    mask[2:6, 3:9] = True
    np.testing.assert_array_equal(roi_from(mask, img), mask.astype(float))
    np.testing.assert_array_equal(roi_from(mask.astype(np.uint8) * 255, img), mask.astype(float))
    # integer 0/1 masks ((m > 0).astype(int)) are 0/1, not 1/255: they steered nothing
    for dtype in (np.uint8, np.int64, np.int32):
        np.testing.assert_array_equal(roi_from(mask.astype(dtype), img), mask.astype(float))
    np.testing.assert_array_equal(roi_from(mask.astype(np.uint8) * 2, img), mask * 2 / 255)
    np.testing.assert_array_equal(roi_from(mask[:, :, None] * 0.5, img), mask * 0.5)
    write_map(tmp_path / "m.png", mask.astype(float))
    for spec in (tmp_path / "m.png", str(tmp_path / "m.png")):
        np.testing.assert_array_equal(roi_from(spec, img), mask.astype(float))


def test_roi_from_errors_say_what_to_do(tmp_path):
    img = _image((12, 16))
    with pytest.raises(SaliencyError, match="neither a saliency method nor an existing file"):
        roi_from("autp", img)
    with pytest.raises(SaliencyError, match="numpy array"):
        roi_from(3, img)
    with pytest.raises(ImageFormatError, match="outside \\[0, 1\\].*normalise"):
        roi_from(np.full((12, 16), 2.0), img)
    with pytest.raises(ImageFormatError, match="0..255"):
        roi_from(np.full((12, 16), 300), img)
    with pytest.raises(ImageFormatError, match="but the image is 12x16"):
        roi_from(np.zeros((6, 8)), img)
    assert roi_from(np.ones((6, 8)), img, resize=True).shape == (12, 16)
    write_map(tmp_path / "small.png", np.ones((6, 8)))
    with pytest.raises(ImageFormatError, match="resize=True"):
        roi_from(tmp_path / "small.png", img)
    with pytest.raises(ImageFormatError):
        roi_from("auto", np.zeros((4, 4)))  # not a uint8 image


def test_write_map_errors(tmp_path):
    with pytest.raises(AdatokError, match=".png"):
        write_map(tmp_path / "m.jpg", np.zeros((3, 3)))
    with pytest.raises(ImageFormatError, match="outside \\[0, 1\\]"):
        write_map(tmp_path / "m.png", np.full((3, 3), 1.5))
    with pytest.raises(ImageFormatError, match="H x W"):
        write_map(tmp_path / "m.png", np.zeros((3, 3, 3)))
    assert not list(tmp_path.iterdir())


# --- command line ----------------------------------------------------------------------------------


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    write_image(path, _image((30, 41, 3)))
    return path


@pytest.mark.parametrize("method", [None, *METHODS])
def test_cli_saliency_writes_a_gray_png(tmp_path, photo, method):
    out = tmp_path / "map.png"
    args = ["saliency", str(photo), str(out)] + (["--method", method] if method else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert str(out) in result.stdout
    m = read_mask(out, (30, 41))
    expected = saliency(read_image(photo), method or "auto")
    np.testing.assert_allclose(m, expected, atol=1 / 510 + 1e-12)


def test_cli_saliency_quiet(tmp_path, photo):
    result = runner.invoke(app, ["saliency", str(photo), str(tmp_path / "m.png"), "--quiet"])
    assert result.exit_code == 0 and result.stdout == ""


def test_cli_saliency_errors_are_one_line_exit_2(tmp_path, photo):
    _assert_one_line_error(runner.invoke(app, ["saliency", str(photo), str(tmp_path / "m.png"),
                                               "--method", "sharp"]),
                           "unknown saliency method", "auto, spectral, gradient, centre")
    _assert_one_line_error(runner.invoke(app, ["saliency", str(tmp_path / "nope.png"),
                                               str(tmp_path / "m.png")]), "no such file")
    _assert_one_line_error(runner.invoke(app, ["saliency", str(photo), str(tmp_path / "m.jpg")]),
                           ".png")
    _assert_one_line_error(runner.invoke(app, ["saliency", str(photo),
                                               str(tmp_path / "no" / "dir" / "m.png")]))
    assert not (tmp_path / "m.png").exists() and not (tmp_path / "m.jpg").exists()


def test_a_large_shrink_averages_blocks_first():
    """A 1 x 1,000,000 image took 26 s (the anti-aliasing Gaussian grows with the shrink factor):
    a shrink of 32 or more first averages blocks. Under 32 the map is exactly as before; over it,
    close to the plain anti-aliased resize."""
    from adatok.core.saliency import _resize, _shrunk

    rng = np.random.default_rng(0)
    photo = rng.random((600, 900))
    assert np.array_equal(_shrunk(photo, 64), _resize(photo, (43, 64)))  # factor 14: unchanged
    ramp = np.linspace(0, 1, 200_000)[None, :] + 0.05 * rng.random((1, 200_000))
    fast, plain = _shrunk(ramp, 64), _resize(ramp, (1, 64))
    assert fast.shape == plain.shape == (1, 64)
    assert np.abs(fast - plain).max() < 0.02  # the same smooth ramp
    thin = rng.integers(0, 256, (1, 300_000), dtype=np.uint8)
    for method in METHODS:
        m = saliency(thin, method)
        assert m.shape == (1, 300_000) and np.isfinite(m).all() and 0 <= m.min() and m.max() <= 1
