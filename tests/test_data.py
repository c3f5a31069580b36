import numpy as np
import pytest
import torch
from PIL import Image

from dif.data import (ImageReadError, center_crop, compute_residuals, draw_subset, find_labelled, list_images,
                      load_image)
from dif.extractors import HighPassExtractor
from dif.errors import DIFError


def _save(path, mode, size=(20, 16), **kw):
    arr = np.random.default_rng(0).integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    if mode == "P_transparent":
        img = Image.fromarray(arr).convert("P")
        img.save(path, transparency=0)
        return path
    if mode == "I;16":
        img = Image.fromarray((np.arange(size[0] * size[1]).reshape(size[1], size[0]) * 100).astype(np.uint16))
    else:
        img = Image.fromarray(arr).convert(mode)
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("mode,ext", [("L", ".png"), ("LA", ".png"), ("RGBA", ".png"), ("P", ".png"),
                                      ("P_transparent", ".png"), ("I;16", ".png"), ("CMYK", ".jpg"),
                                      ("CMYK", ".tif"), ("1", ".bmp"), ("RGB", ".webp"), ("RGB", ".JPEG")])
def test_modes_are_converted_to_rgb_float(tmp_path, mode, ext):
    p = _save(tmp_path / f"img{ext}", mode)
    x = load_image(p)
    assert x.shape == (3, 16, 20) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_16bit_keeps_its_range(tmp_path):
    p = _save(tmp_path / "deep.png", "I;16")
    x = load_image(p)
    # values go up to 319*100 = 31900 of 65535: not clipped to white
    assert x.max().item() == pytest.approx(31900 / 65535, abs=1e-4)


def test_truncated_and_non_images_raise(tmp_path):
    good = _save(tmp_path / "good.png", "RGB", size=(64, 64))
    data = good.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_text("not an image")
    for name in ("trunc.png", "text.jpg"):
        with pytest.raises(ImageReadError, match="cannot decode"):
            load_image(tmp_path / name)


def test_decompression_bomb_is_refused(tmp_path):
    p = _save(tmp_path / "big.png", "RGB", size=(64, 64))
    with pytest.raises(ImageReadError, match="pixel limit"):
        load_image(p, max_pixels=1000)


def test_center_crop_and_too_small():
    x = torch.arange(2 * 6 * 8, dtype=torch.float32).view(2, 6, 8)
    c = center_crop(x, (4, 4))
    assert torch.equal(c, x[:, 1:5, 2:6])
    with pytest.raises(ImageReadError, match="smaller than"):
        center_crop(x, (8, 8))


def test_list_images_reads_every_format_case_insensitively(tmp_path):
    for name in ("a.PNG", "b.jpg", "c.JPEG", "d.webp", "e.Tiff", "f.bmp"):
        _save(tmp_path / name, "RGB", **({"format": "JPEG"} if name.lower().endswith(("jpg", "jpeg")) else {}))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.jpg", "c.JPEG", "d.webp", "e.Tiff", "f.bmp"]


def test_find_labelled_errors(tmp_path):
    with pytest.raises(DIFError, match="not found"):
        find_labelled(tmp_path / "nope")
    (tmp_path / "0_real").mkdir()
    with pytest.raises(DIFError, match="no '1_fake'"):
        find_labelled(tmp_path)
    (tmp_path / "1_fake").mkdir()
    _save(tmp_path / "0_real" / "r.png", "RGB")
    with pytest.raises(DIFError, match="holds no images"):
        find_labelled(tmp_path)
    _save(tmp_path / "1_fake" / "f.png", "RGB")
    ds = find_labelled(tmp_path)
    assert ds.labels == [0, 1] and len(ds.paths) == 2


def test_draw_subset_is_reproducible():
    paths = [f"p{i}" for i in range(50)]
    a = draw_subset(paths, 10, seed=1)
    assert a == draw_subset(paths, 10, seed=1) and len(set(a)) == 10
    assert a != draw_subset(paths, 10, seed=2)
    assert draw_subset(paths, 100, seed=1) == paths


def test_compute_residuals_skips_bad_and_small(tmp_path, caplog):
    ok = [_save(tmp_path / f"ok{i}.png", "RGB", size=(40, 40)) for i in range(3)]
    small = _save(tmp_path / "small.png", "RGB", size=(20, 20))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    paths = ok + [small, bad]
    cache = compute_residuals(paths, [0, 1, 0, 1, 1], HighPassExtractor(1.0), (32, 32), batch_size=2)
    assert cache.residuals.shape == (3, 3, 32, 32)
    assert cache.labels.tolist() == [0, 1, 0]
    assert [p.name for p, _ in cache.skipped] == ["small.png", "bad.png"]
    assert "skipping" in caplog.text


def test_centre_crop_lands_on_the_authors_grid():
    """Their CenterCrop rounds half to even: a 583 px side cropped to 256 starts at 164 (floor: 163)."""
    import torch
    from torchvision.transforms.functional import center_crop as torchvision_center_crop

    from dif.data import center_crop, crop_offsets

    assert crop_offsets(583, 584, 256, 256) == (164, 164)  # margins 327 -> 163.5 -> 164; 328 -> 164
    assert crop_offsets(581, 256, 256, 256) == (162, 0)  # 162.5 -> 162 (half to even)
    for H, W in [(583, 600), (257, 259), (256, 256), (300, 511), (341, 358)]:
        x = torch.arange(H * W).reshape(1, H, W)
        assert torch.equal(center_crop(x, (256, 256)), torchvision_center_crop(x, [256, 256])), (H, W)


def test_the_residual_stack_fills_in_place_and_grows_only_when_it_must():
    """training_residuals' preallocated tensor: rows land in order, fewer than announced give a
    view of the filled part, more than announced still all arrive, and no copies means no copy."""
    import torch

    from dif.data import _Stack

    a, b, c = (torch.full((n, 1, 2, 2), float(v)) for n, v in ((2, 1), (2, 2), (3, 3)))
    st = _Stack(a, 6)
    st.add(b)
    assert st.tensor().shape[0] == 4 and st.tensor()[:, 0, 0, 0].tolist() == [1, 1, 2, 2]
    st.add(c)  # 7 rows where 6 were announced
    assert st.tensor()[:, 0, 0, 0].tolist() == [1, 1, 2, 2, 3, 3, 3]
    assert _Stack(a, 2).tensor().data_ptr() == a.data_ptr()


@pytest.mark.parametrize("ext,save", [
    (".avif", {}),   # Pillow's own codec (the web's)
    (".heic", {}),   # phones' photos, through the pillow-heif plugin
    (".HEIF", {}),   # any case
    (".gif", {}),
])
def test_every_format_people_send_is_read(tmp_path, ext, save):
    """AVIF and HEIC photos are found in a folder and decoded like any other image (the pixels of
    a lossy encoding of a smooth image stay close to it)."""
    import numpy as np
    from PIL import Image

    from dif.data import load_image, register_heif, scan_folder

    register_heif()  # the plugin's encoder writes the HEIC test file
    yy, xx = np.mgrid[0:48, 0:64]
    arr = np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    path = tmp_path / f"photo{ext}"
    Image.fromarray(arr).save(path, format={".gif": "GIF", ".avif": "AVIF"}.get(ext.lower(), "HEIF"), **save)
    images, skipped = scan_folder(tmp_path)
    assert images == [path] and skipped == []
    x = load_image(path)
    assert tuple(x.shape) == (3, 48, 64)
    err = np.abs(x.permute(1, 2, 0).numpy() * 255 - arr).mean()
    assert err < (40 if ext == ".gif" else 8), err  # GIF: a 256-colour palette


def test_an_animation_gives_its_first_frame_and_says_so(tmp_path, caplog):
    import logging

    import numpy as np
    from PIL import Image

    from dif.data import load_image

    frames = [Image.fromarray(np.full((32, 40, 3), v, np.uint8)) for v in (30, 120, 220)]
    for ext in (".gif", ".webp"):
        path = tmp_path / f"anim{ext}"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
        with caplog.at_level(logging.WARNING, logger="dif.data"):
            x = load_image(path)
        assert abs(float(x.mean()) * 255 - 30) < 3  # the first frame, not the last
        assert f"anim{ext}: animated (3 frames); using its first frame" in caplog.text


def test_heic_without_its_plugin_is_one_line_naming_it(tmp_path, monkeypatch):
    import builtins

    from dif.data import load_image, register_heif
    from dif.errors import ImageReadError

    register_heif.cache_clear()
    real_import = builtins.__import__

    def no_plugin(name, *a, **k):
        if name == "pillow_heif":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_plugin)
    (tmp_path / "x.heic").write_bytes(b"not really")
    with pytest.raises(ImageReadError, match=r"x\.heic: .*pip install pillow-heif"):
        load_image(tmp_path / "x.heic")
    register_heif.cache_clear()
