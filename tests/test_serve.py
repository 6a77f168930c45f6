"""adatok serve, through its HTTP API (FastAPI's test client, and a live uvicorn server for the
concurrency checks): every endpoint, with the numbers checked against the library, and the bad
inputs, each refused with a 4xx and a JSON message in words while the server keeps serving."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import struct
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402

import adatok  # noqa: E402
from adatok import TokenSequence  # noqa: E402
from adatok.core.metrics import psnr, ssim  # noqa: E402
from adatok.datasets import sample_images  # noqa: E402
from adatok.serve import Limits, create_app  # noqa: E402
from adatok.serve import state as serve_state  # noqa: E402

STATIC = Path(adatok.__file__).parent / "serve" / "static"


# ------------------------------------------------------------------------------------------------
# Helpers, shared with tests/test_serve_browser.py
# ------------------------------------------------------------------------------------------------


def local_client(app, **kwargs) -> TestClient:
    """FastAPI's test client of ``app`` as a browser on this machine calls it (the app answers the
    Host names 127.0.0.1, localhost and ::1 only: the client's own, testserver, is refused)."""
    return TestClient(app, base_url="http://127.0.0.1", **kwargs)


def png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, "PNG")
    return buf.getvalue()


def photo(side: int = 96) -> np.ndarray:
    return sample_images(["astronaut"], max_side=side)[0][1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app):
    """``app`` under uvicorn on 127.0.0.1 and a free port, in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def train_tiny_generator(folder: Path) -> Path:
    """A generator of wavelet tokens of 28x28 images, trained for 3 seconds (as tests/test_generate.py
    does): enough for its mechanics, not its quality."""
    from adatok import Quality
    from adatok.generate.languages import WaveletLanguage
    from adatok.generate.train import GenTrainConfig, model_config_for, train_generator

    lang = WaveletLanguage("wavelet", (28, 28, 1), Quality(psnr=16))
    train_generator(folder, lang, model_config_for(lang, 32, 1, 2, 2048),
                    GenTrainConfig(minutes=0.05, limit=24, val_images=8, batch=4, eval_every=1e9), log=lambda *a: None)
    return folder


def fashion_image(i: int = 0) -> np.ndarray:
    return adatok.datasets.load("fashion-mnist", "test", limit=i + 1).images[i]


def cut_atk(fraction: float = 0.4, i: int = 0) -> bytes:
    """The first ``fraction`` of the ``.atk`` file of a Fashion-MNIST test image (wavelet)."""
    data = adatok.load("wavelet").encode([fashion_image(i)])[0].to_bytes()
    return data[: int(len(data) * fraction)]


def sse_events(text: str) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]


def frame_of(response) -> tuple[np.ndarray, dict]:
    n = json.loads(response.headers["X-Adatok-Frame"])
    pixels = np.frombuffer(response.content, np.uint8).reshape(n["height"], n["width"], n["channels"])
    return pixels, n


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator_folder(tmp_path_factory):
    pytest.importorskip("torch")
    return train_tiny_generator(tmp_path_factory.mktemp("serve-gen") / "tiny-gen")


@pytest.fixture(scope="module")
def client(generator_folder):
    with local_client(create_app(Limits(updates=0.0), generators=[generator_folder])) as c:
        yield c


@pytest.fixture(scope="module")
def coded(client):
    """A 96x96 photo uploaded and coded with the wavelet tokenizer: (image id, coding, pixels)."""
    img = photo()
    r = client.post("/api/images", files={"file": ("photo.png", png_bytes(img), "image/png")})
    assert r.status_code == 200, r.text
    iid = r.json()["image"]
    r = client.post("/api/codings", data={"image": iid, "tokenizer": "wavelet"})
    assert r.status_code == 200, r.text
    return iid, r.json(), img


def refused(r, status: int | tuple[int, ...]) -> str:
    """The error message of a refused request, after checking its status and JSON body."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and len(body["error"]) > 10
    assert "Traceback" not in body["error"] and "/tmp/" not in body["error"]
    return body["error"]


# ------------------------------------------------------------------------------------------------
# The page and the API, working
# ------------------------------------------------------------------------------------------------


def test_the_page_and_its_files_come_from_the_package(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    refs = set()
    for f in ["index.html", "app.js", "style.css"]:
        text = (STATIC / f).read_text()
        assert "http://" not in text and "https://" not in text, f"{f} loads something from elsewhere"
        refs |= {m for m in __import__("re").findall(r'"(/static/[\w./-]+)"', text)}
    assert refs >= {"/static/app.js", "/static/style.css"}
    for ref in refs:
        assert client.get(ref).status_code == 200, ref


def test_info(client, generator_folder):
    info = client.get("/api/info").json()
    assert {"wavelet", "wavelet-lossless"} <= set(info["tokenizers"])
    assert "astronaut" in info["samples"] and len(info["classes"]) == 10
    assert [g["id"] for g in info["generators"]] == [generator_folder.name]
    assert info["generators"][0]["tokenizer"] == "wavelet"
    assert info["limits"]["max_pixels"] == 2**20


def test_sample_and_original(client):
    r = client.post("/api/samples/camera")
    assert r.status_code == 200 and r.json()["width"] == 512 and r.json()["channels"] == 1
    png = client.get(f"/api/images/{r.json()['image']}.png")
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.content))), sample_images(["camera"])[0][1][:, :, 0])


def test_frames_are_the_library_s_prefixes(client, coded):
    _, coding, img = coded
    tok = adatok.load("wavelet")
    (seq,) = tok.encode([img])
    assert coding["tokens"] == len(seq) and coding["bytes"] == len(seq.to_bytes())
    cid, step = coding["coding"], coding["step"]
    assert step == -(-len(seq) // 65536)  # every step-th prefix is a cut (the full sequence too)
    for k in (0, step, 389 * step, len(seq) // 3 // step * step, len(seq)):
        pixels, n = frame_of(client.get(f"/api/codings/{cid}/frame?tokens={k}"))
        assert n["k"] == k and n["tokens"] == k and n["total"] == len(seq)
        assert np.array_equal(pixels, tok.decode([seq.prefix(k)])[0])
        assert n["bytes"] == len(seq.prefix(k).to_bytes())
        assert n["bpp"] == pytest.approx(8 * n["bytes"] / img.shape[0] / img.shape[1])
        expect = psnr(img, pixels)
        assert (n["psnr"] is None) if np.isinf(expect) else n["psnr"] == pytest.approx(expect)
    if step > 1:  # between cuts: the cut below
        assert frame_of(client.get(f"/api/codings/{cid}/frame?tokens={10 * step + 1}"))[1]["k"] == 10 * step
    # bytes: the longest cut whose file fits; psnr: the shortest cut that reaches it
    _, n = frame_of(client.get(f"/api/codings/{cid}/frame?bytes=1500"))
    assert n["bytes"] <= 1500 and len(seq.prefix(n["k"] + step).to_bytes()) > 1500
    _, n = frame_of(client.get(f"/api/codings/{cid}/frame?psnr=28"))
    assert n["psnr"] >= 28 and psnr(img, tok.decode([seq.prefix(n["k"] - step)])[0]) < 28


def test_details_downloads(client, coded):
    _, coding, img = coded
    cid, k = coding["coding"], 1000 * coding["step"]
    pixels, _ = frame_of(client.get(f"/api/codings/{cid}/frame?tokens={k}"))
    d = client.get(f"/api/codings/{cid}/details?tokens={k}").json()
    assert d["k"] == k and d["ssim"] == pytest.approx(ssim(img, pixels))
    from PIL import Image
    import base64

    for key in ("error_map", "token_map"):
        im = Image.open(io.BytesIO(base64.b64decode(d[key].split(",", 1)[1])))
        assert im.size == (img.shape[1], img.shape[0])
    atk = client.get(f"/api/codings/{cid}/prefix.atk?tokens={k}")
    assert atk.status_code == 200 and "attachment" in atk.headers["content-disposition"]
    seq = TokenSequence.from_bytes(atk.content)
    assert len(seq) == k and np.array_equal(adatok.load("wavelet").decode([seq])[0], pixels)
    png = client.get(f"/api/codings/{cid}/prefix.png?tokens={k}")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.content))), pixels)
    # an upload named in another script: the downloads failed with 500 (headers are Latin-1)
    iid = client.post("/api/images", files={"file": ("写真.png", png_bytes(photo(24)), "image/png")}).json()["image"]
    other = client.post("/api/codings", data={"image": iid}).json()["coding"]
    for what in ("prefix.atk", "prefix.png"):
        r = client.get(f"/api/codings/{other}/{what}?tokens=10")
        assert r.status_code == 200, r.text
        assert "filename*=UTF-8''%E5%86%99%E7%9C%9F-wavelet-10." in r.headers["content-disposition"]


def test_curve_against_the_codecs_at_the_same_bytes(client, coded):
    _, coding, _ = coded
    c = client.get(f"/api/codings/{coding['coding']}/curve").json()
    assert [s["name"] for s in c["codecs"]] == ["jpeg", "webp", "jp2"]
    ours = c["ours"]["points"]
    assert len(ours) >= 10 and ours[-1]["tokens"] == coding["tokens"]
    for s in c["codecs"]:
        assert s["points"], s["name"]
        for p in s["points"]:
            assert p["bytes"] <= p["budget"] and p["psnr"] > 10


def test_region_of_interest(client, coded):
    iid, coding, img = coded
    mask = np.zeros((*img.shape[:2], 1), np.uint8)
    mask[20:60, 30:70] = 255
    r = client.post("/api/codings", data={"image": iid, "tokenizer": "wavelet", "roi": "paint"},
                    files={"mask": ("region.png", png_bytes(mask), "image/png")})
    assert r.status_code == 200, r.text
    steered = r.json()
    assert steered["roi"] == "painted" and steered["coding"] != coding["coding"]
    cmp = client.get(f"/api/codings/{steered['coding']}/compare?bytes=1200").json()
    assert cmp["region_pixels"] == 40 * 40
    for key in ("with", "without"):
        assert cmp[key]["bytes"] <= 1200 and cmp[key]["inside"] and cmp[key]["outside"]
    assert cmp["with"]["inside"] > cmp["without"]["inside"]  # the early tokens went to the region
    for huge in (2**40 + 1, 10**23):  # (came back in the JSON, a number JavaScript cannot hold)
        refused(client.get(f"/api/codings/{steered['coding']}/compare?bytes={huge}"), 422)
    assert client.get(f"/api/codings/{steered['coding']}/compare?bytes={2**40}").json()["with"]["bytes"] > 1200
    auto = client.post("/api/codings", data={"image": iid, "tokenizer": "wavelet", "roi": "auto"})
    assert auto.status_code == 200 and auto.json()["roi"] == "auto"
    # a painted region of the wrong size, an empty one, none, and a tokenizer without regions
    small = png_bytes(mask[:10, :10])
    refused(client.post("/api/codings", data={"image": iid, "roi": "paint"},
                        files={"mask": ("region.png", small, "image/png")}), 400)
    refused(client.post("/api/codings", data={"image": iid, "roi": "paint"},
                        files={"mask": ("region.png", png_bytes(0 * mask), "image/png")}), 400)
    refused(client.post("/api/codings", data={"image": iid, "roi": "paint"}), 400)
    refused(client.post("/api/codings", data={"image": iid, "roi": "../etc/passwd"}), 400)
    refused(client.get(f"/api/codings/{coding['coding']}/compare?bytes=1000"), 400)


def test_a_painted_region_is_read_as_the_library_reads_a_mask(client, coded, tmp_path):
    """The server thresholded the mask at 128 after flattening alpha onto white: a layer painted on
    a transparent ground counted as all inside, and gray levels were not graded. Now the library's
    read_mask: transparency refused, and the coding is encode(img, roi=[the same file])."""
    from PIL import Image as PILImage

    iid, _, img = coded
    h, w = img.shape[:2]
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[h // 4 : h // 2, w // 4 : w // 2] = 255  # opaque white brush on a transparent ground
    buf = io.BytesIO()
    PILImage.fromarray(rgba, "RGBA").save(buf, "PNG")
    assert "transparent" in refused(client.post("/api/codings", data={"image": iid, "roi": "paint"},
                                                files={"mask": ("layer.png", buf.getvalue(), "image/png")}), 400)
    gray = np.zeros((h, w, 1), np.uint8)
    gray[: h // 2], gray[h // 2 :] = 200, 60  # graded: more here, less there
    (tmp_path / "g.png").write_bytes(png_bytes(gray))
    r = client.post("/api/codings", data={"image": iid, "tokenizer": "wavelet", "roi": "paint"},
                    files={"mask": ("g.png", png_bytes(gray), "image/png")})
    assert r.status_code == 200, r.text
    served = client.get(f"/api/codings/{r.json()['coding']}/prefix.atk", params={"tokens": r.json()["tokens"]})
    seq, = adatok.load("wavelet").encode([img], roi=[tmp_path / "g.png"])
    assert served.content == seq.to_bytes()


def test_an_upload_is_opened_under_the_librarys_pixel_limit(monkeypatch):
    """The header check opened uploads under Pillow's own limit (89 M pixels; it raises above twice
    that): a 43-byte GIF whose first frame is 13000 x 13000 made Pillow allocate 170 MB before the
    server said 413. Now under the library's (50 M), as every read is (not the server's own, lower
    limit: Pillow's is one for the process, and another thread's read of a larger image would have
    been refused meanwhile)."""
    from adatok.core.imageio import MAX_PIXELS

    from PIL import Image as PILImage

    seen = []
    real_open = PILImage.open

    def spy(*args, **kwargs):
        seen.append(PILImage.MAX_IMAGE_PIXELS)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(PILImage, "open", spy)
    head = b"GIF87a" + struct.pack("<HH", 1, 1) + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x21\xf9\x04\x09\x00\x00\x00\x00" + b"," + struct.pack("<HHHH", 0, 0, 13000, 13000) + b"\x00"
    gif = head + frame + bytes([2, 2, 0x4C, 0x01, 0]) + b";"
    with local_client(create_app(Limits(max_pixels=5000))) as c:
        assert "pixels" in refused(c.post("/api/images", files={"file": ("b.gif", gif, "image/gif")}), 413)
        assert c.post("/api/images", files={"file": ("s.png", png_bytes(photo(64)), "image/png")}).status_code == 200
    assert seen and seen[0] == MAX_PIXELS  # Pillow's check at the library's limit while the header is read
    assert PILImage.MAX_IMAGE_PIXELS != MAX_PIXELS  # and restored after


def test_curves_of_two_codings_of_one_image_at_once(client):
    """Two curve requests on codings of the same image shared its codecs' files: one filled the dict
    the other walked (RuntimeError, a 500). Made certain by a dict whose walk is slow."""

    class SlowWalk(dict):
        def items(self):
            for kv in super().items():
                time.sleep(0.01)
                yield kv

    img = np.random.default_rng(5).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    iid = client.post("/api/images", files={"file": ("x.png", png_bytes(img), "image/png")}).json()["image"]
    cids = [client.post("/api/codings", data={"image": iid, "tokenizer": t}).json()["coding"]
            for t in ("wavelet", "wavelet-lossless")]
    client.app.state.server.images.get(iid).codecs["jpeg"] = SlowWalk()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda cid: client.get(f"/api/codings/{cid}/curve"), cids))
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["codecs"] == answers[1].json()["codecs"]


def test_a_learned_tokenizer(client):
    pytest.importorskip("torch")
    r = client.post("/api/images", files={"file": ("shirt.png", png_bytes(fashion_image()), "image/png")})
    iid = r.json()["image"]
    c = client.post("/api/codings", data={"image": iid, "tokenizer": "fashion-mnist-32"}).json()
    assert c["tokens"] == 32
    tok = adatok.load("fashion-mnist-32")
    (seq,) = tok.encode([fashion_image()])
    pixels, n = frame_of(client.get(f"/api/codings/{c['coding']}/frame?tokens=5"))
    assert np.array_equal(pixels, tok.decode([seq.prefix(5)])[0]) and n["bytes"] == len(seq.prefix(5).to_bytes())
    # a photo is not what it reads; nor does it take a region
    photo_id = client.post("/api/samples/camera").json()["image"]
    refused(client.post("/api/codings", data={"image": photo_id, "tokenizer": "fashion-mnist-32"}), 400)
    refused(client.post("/api/codings", data={"image": iid, "tokenizer": "fashion-mnist-32", "roi": "auto"}), 400)


def test_generation_streams_until_done(client, generator_folder):
    r = client.post("/api/jobs/generate", data={"model": generator_folder.name, "label": 5, "n": 2, "seed": 1,
                                                "max_tokens": 120})
    assert r.status_code == 200, r.text
    job = r.json()["job"]
    with client.stream("GET", f"/api/jobs/{job}/events") as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        events = sse_events("".join(s.iter_text()))
    assert len(events) >= 3 and events[-1]["done"] and not any(e["done"] for e in events[:-1])
    counts = [sum(e["tokens"]) for e in events]
    assert counts == sorted(counts) and 0 < max(events[-1]["tokens"]) <= 120
    assert len(events[-1]["images"]) == 2 and events[-1]["images"][0].startswith("data:image/png;base64,")
    refused(client.get(f"/api/jobs/{job}/events"), 400)  # a job runs once


def test_completion_keeps_the_prefix(client, generator_folder):
    cut = cut_atk()
    prefix = TokenSequence.from_bytes(cut)
    r = client.post("/api/jobs/complete", data={"model": generator_folder.name, "n": 2, "max_tokens": 60},
                    files={"file": ("cut.atk", cut, "application/octet-stream")})
    assert r.status_code == 200, r.text
    assert r.json()["prefix"] == len(prefix)
    with client.stream("GET", f"/api/jobs/{r.json()['job']}/events") as s:
        events = sse_events("".join(s.iter_text()))
    assert events[-1]["done"] and all(t >= len(prefix) for t in events[-1]["tokens"])
    # max_tokens: tokens the model writes after the prefix (the sampler's counts the prefix too: a
    # cap below the prefix's length wrote nothing, without a word)
    short = len(prefix) // 2
    r = client.post("/api/jobs/complete", data={"model": generator_folder.name, "n": 2, "max_tokens": short},
                    files={"file": ("cut.atk", cut, "application/octet-stream")})
    with client.stream("GET", f"/api/jobs/{r.json()['job']}/events") as s:
        tokens = sse_events("".join(s.iter_text()))[-1]["tokens"]
    assert all(len(prefix) <= t <= len(prefix) + short for t in tokens) and max(tokens) > len(prefix)


# ------------------------------------------------------------------------------------------------
# Bad inputs: a 4xx each, in words, and the server goes on
# ------------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(w: int = 100_000, h: int = 100_000) -> bytes:
    """A small PNG whose header claims ``w x h`` pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def png16() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(buf, "PNG")
    return buf.getvalue()


BAD_UPLOADS = {
    "not an image": (b"this is text, not pixels", "image/png", 400, "not an image"),
    "0 bytes": (b"", "image/png", 400, "empty"),
    "truncated PNG": (png_bytes(photo(64))[:300], "image/png", 400, "truncated"),
    "16-bit PNG": (png16(), "image/png", 400, "16-bit"),
    "decompression bomb": (bomb_png(), "image/png", 413, "pixels"),
    "over the pixel limit": (bomb_png(2048, 1024), "image/png", 413, "pixels"),
    "wrong content type": (png_bytes(photo(32)), "text/plain", 415, "not an image"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_uploads(client, case):
    data, kind, status, words = BAD_UPLOADS[case]
    message = refused(client.post("/api/images", files={"file": ("input.png", data, kind)}), status)
    assert words in message.lower() and "input.png" in message
    assert client.get("/api/info").status_code == 200  # still serving


def test_bad_requests(client, coded, generator_folder):
    iid, coding, _ = coded
    cid, n = coding["coding"], coding["tokens"]
    cases = [
        (client.get(f"/api/codings/{cid}/frame?tokens={n + 1}"), 422, "out of range"),
        (client.get(f"/api/codings/{cid}/frame?tokens=-5"), 422, "out of range"),
        (client.get(f"/api/codings/{cid}/frame?bytes=-1"), 422, "out of range"),
        (client.get(f"/api/codings/{cid}/frame?psnr=0"), 422, "out of range"),
        (client.get(f"/api/codings/{cid}/frame?tokens=many"), 422, "integer"),
        (client.get(f"/api/codings/{cid}/frame?tokens=3&bytes=9"), 422, "exactly one"),
        (client.get(f"/api/codings/{cid}/frame"), 422, "exactly one"),
        (client.get("/api/codings/nosuchcoding/frame?tokens=3"), 404, "no coding"),
        (client.post("/api/codings", data={"image": iid, "tokenizer": "jpeg-xl"}), 400, "unknown tokenizer"),
        (client.post("/api/codings", data={"image": iid, "tokenizer": "/tmp"}), 400, "unknown tokenizer"),
        (client.post("/api/codings", data={"image": "nosuchimage"}), 404, "no image"),
        (client.post("/api/samples/..%2F..%2Fetc%2Fpasswd"), 404, ""),
        (client.post("/api/samples/lena"), 404, "unknown sample"),
        (client.post("/api/images", json={"file": "photo.png"}), 415, "multipart/form-data"),
        (client.get("/api/nothing"), 404, "nothing here"),
        (client.post("/api/jobs/generate", data={"model": "/tmp"}), 400, "unknown generator"),
        (client.post("/api/jobs/generate", data={"model": generator_folder.name, "label": 12}), 422,
         "has the classes 0..9"),  # (the generator's own: they were 0..9 whatever the model)
        (client.post("/api/jobs/generate", data={"model": generator_folder.name, "label": -2}), 422, "label="),
        (client.post("/api/jobs/generate", data={"model": generator_folder.name, "n": 1000}), 422, "n="),
        (client.post("/api/jobs/generate", data={"model": generator_folder.name, "seed": 2**70}), 422, "seed="),
        (client.get("/api/jobs/nosuchjob/events"), 404, "no job"),
    ]
    atk = {"model": generator_folder.name}
    corrupt = bytearray(cut_atk(1.0))
    corrupt[len(corrupt) // 2] ^= 0xFF
    photo_atk = adatok.load("wavelet").encode([photo(40)])[0].to_bytes()
    for data, words in [(b"not an atk file", "not an adatok container"), (bytes(corrupt), "corrupt"),
                        (cut_atk()[:12], "truncated"), (photo_atk, "image"), (b"", "empty")]:
        cases.append((client.post("/api/jobs/complete", data=atk, files={"file": ("x.atk", data, "application/octet-stream")}),
                      400, words))
    cases.append((client.post("/api/jobs/complete", data=atk, files={"file": ("x.atk", b"1234", "image/png")}), 415, ".atk"))
    for r, status, words in cases:
        message = refused(r, status)
        assert words in message, (r.request.url, message)
    assert client.get("/api/info").status_code == 200


def test_limits_of_a_small_server(tmp_path, monkeypatch):
    """Uploads over the byte limit are refused before they are read whole; uploads are written only
    to the temporary folder, which is empty after each request."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    app = create_app(Limits(max_upload_bytes=50_000, max_pixels=64 * 64))
    with local_client(app) as c:
        big = png_bytes(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
        assert "upload limit" in refused(c.post("/api/images", files={"file": ("big.png", big, "image/png")}), 413)
        assert "pixels" in refused(c.post("/api/images", files={"file": ("p.png", png_bytes(photo(96)), "image/png")}), 413)
        ok = c.post("/api/images", files={"file": ("small.png", png_bytes(photo(64)), "image/png")})
        assert ok.status_code == 200
        # without a Content-Length (chunked): found while it arrives, inside the form parser (was 400)
        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
                "Content-Type: image/png\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()
        chunked = c.post("/api/images", content=(body[i : i + 8192] for i in range(0, len(body), 8192)),
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert "upload limit" in refused(chunked, 413)
        assert list(tmp.iterdir()) == []


def test_a_queue_not_a_crash():
    """Three encodes at once on a server that runs one at a time: all three are served, in turn;
    with a time limit shorter than an encode, the request gets 503 in words and the server goes on."""
    import httpx

    app = create_app(Limits(encoders=1))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        r = http.post("/api/images", files={"file": ("p.png", png_bytes(photo(128)), "image/png")})
        assert r.status_code == 200, r.text
        iid = r.json()["image"]

        def encode(tok):
            return http.post("/api/codings", data={"image": iid, "tokenizer": tok, "roi": "centre"})

        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(encode, ["wavelet", "wavelet-lossless", "wavelet"]))
        assert [r.status_code for r in results] == [200, 200, 200], [r.text for r in results]
    app = create_app()
    with local_client(app) as c:
        iid = c.post("/api/samples/astronaut").json()["image"]
        app.state.server.limits.seconds = 0.01  # far less than encoding a 512x512 photo takes
        assert "time limit" in refused(c.post("/api/codings", data={"image": iid}), 503)
        app.state.server.limits.seconds = 60
        assert c.get("/api/info").status_code == 200


def test_the_command(monkeypatch):
    from typer.testing import CliRunner

    from adatok.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["serve", "--help"]).exit_code == 0
    bad = runner.invoke(app, ["serve", "--port", "0"])
    assert bad.exit_code == 2 and "--port" in bad.stderr
    calls = {}
    import uvicorn

    def run(self, sockets=None):  # the server would run on the socket the command bound
        calls.update(app=self.config.app, address=sockets[0].getsockname())
        sockets[0].close()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    ok = runner.invoke(app, ["serve", "--port", "8123", "--max-pixels", "4096"])
    assert ok.exit_code == 0 and "http://127.0.0.1:8123/" in ok.stderr
    assert calls["address"] == ("127.0.0.1", 8123)
    assert calls["app"].state.server.limits.max_pixels == 4096


def _png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def test_server_review_2026_12_01(tmp_path, monkeypatch):
    """Found by review: a coding handed to the page again was the next one dropped; sample photos
    skipped --max-pixels; a byte budget under the empty file answered a larger file (and compared
    two codings at different bytes); seconds NaN was accepted and refused everything after."""
    from adatok.serve import Limits, create_app

    with pytest.raises(adatok.AdatokError):
        Limits(seconds=float("nan"))
    c = local_client(create_app(Limits(codings=2, max_pixels=65536)), raise_server_exceptions=False)
    rng = np.random.default_rng(0)
    ids = [c.post("/api/images", files={"file": (f"{i}.png", _png_bytes(rng.integers(0, 256, (24, 24, 3), np.uint8)),
                                                 "image/png")}).json()["image"] for i in range(3)]
    a = c.post("/api/codings", data={"image": ids[0]}).json()["coding"]
    b = c.post("/api/codings", data={"image": ids[1]}).json()["coding"]
    assert c.post("/api/codings", data={"image": ids[0]}).json()["coding"] == a
    c.post("/api/codings", data={"image": ids[2]})
    assert c.get(f"/api/codings/{a}/frame", params={"tokens": 0}).status_code == 200
    assert c.get(f"/api/codings/{b}/frame", params={"tokens": 0}).status_code == 404
    big = c.post("/api/samples/astronaut")
    assert big.status_code == 413 and "pixels" in big.json()["error"]
    smallest = json.loads(c.get(f"/api/codings/{a}/frame", params={"tokens": 0}).headers["X-Adatok-Frame"])["bytes"]
    assert c.get(f"/api/codings/{a}/frame", params={"bytes": smallest}).status_code == 200
    low = c.get(f"/api/codings/{a}/frame", params={"bytes": smallest - 1})
    assert low.status_code == 422 and "smallest" in low.json()["error"]


def test_server_completion_and_generator_ids(tmp_path):
    """Found by review: two generator folders named alike shared one id (the last one ran); a cut
    file coded with a region was accepted and failed in the job; a cut file as long as the model's
    longest sequence, without max_tokens, gave completions that wrote nothing."""
    import shutil

    import adatok.datasets
    from adatok.serve import Limits, create_app

    pytest.importorskip("torch")
    shipped = Path(adatok.__file__).parent / "checkpoints"
    shutil.copytree(shipped / "fmnist-gpt-wavelet", tmp_path / "a" / "gen")
    shutil.copytree(shipped / "fmnist-gpt-learned", tmp_path / "b" / "gen")
    c = local_client(create_app(Limits(updates=0.0), generators=[tmp_path / "a" / "gen", tmp_path / "b" / "gen"]),
                   raise_server_exceptions=False)
    listed = c.get("/api/info").json()["generators"]
    assert len({g["id"] for g in listed}) == 2
    wavelet = next(g["id"] for g in listed if g["tokenizer"] == "wavelet")
    image = adatok.datasets.load("fashion-mnist", "test", limit=1).images[0]
    tok = adatok.load("wavelet")
    data = tok.encode([image])[0].to_bytes()

    def post(blob, **extra):
        return c.post("/api/jobs/complete", data={"model": wavelet, "n": 1, **extra},
                      files={"file": ("cut.atk", blob, "application/octet-stream")})

    assert post(data[: int(len(data) * 0.4)]).status_code == 200
    roi = np.zeros((28, 28))
    roi[4:12, 4:12] = 1
    coded = tok.encode([image], adatok.Tokens(300), roi=[roi])[0].to_bytes()
    r = post(coded)
    assert r.status_code == 400 and "region of interest" in r.json()["error"]
    r = post(data[: len(data) // 2])
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]
    assert post(data[: len(data) // 2], max_tokens=20).status_code == 200


def test_the_page_loads_without_torch_and_with_a_generator_folder_gone(tmp_path):
    """Listing generators imported torch on every page load (235 MB more); one --generator folder
    removed while the server ran made /api/info and every generation fail (found by review)."""
    import shutil
    import subprocess
    import sys

    code = ("import sys; from fastapi.testclient import TestClient; from adatok.serve import Limits, create_app; "
            "c = TestClient(create_app(Limits()), base_url='http://127.0.0.1'); r = c.get('/api/info'); "
            "assert r.status_code == 200 and r.json()['generators'], r.text; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    from adatok.serve import Limits, create_app

    pytest.importorskip("torch")
    shipped = Path(adatok.__file__).parent / "checkpoints"
    shutil.copytree(shipped / "fmnist-gpt-learned", tmp_path / "mine")
    shutil.copytree(shipped / "fmnist-gpt-learned", tmp_path / "other")
    c = local_client(create_app(Limits(updates=0.0), generators=[tmp_path / "mine", tmp_path / "other"]),
                   raise_server_exceptions=False)
    assert c.get("/api/info").status_code == 200
    shutil.rmtree(tmp_path / "mine")
    assert c.get("/api/info").status_code == 200
    assert c.post("/api/jobs/generate", data={"model": "other", "n": 1}).status_code == 200


def test_server_review_2026_12_02_generation_and_completion(client, generator_folder):
    """Found by review: the page's generation with seed S drew other samples than the library's
    ``sample(gen, labels, seed=S)`` and ``adatok generate --seed S`` (it gave ``run`` the raw seed;
    they seed each batch with a mix of the seed and its index); a whole ``.atk`` file (not cut) to
    complete was taken, and its n "completions" were copies of it, reported done without a word."""
    import base64

    from PIL import Image

    from adatok.generate.sample import load_generator, sample

    r = client.post("/api/jobs/generate", data={"model": generator_folder.name, "label": 5, "n": 2, "seed": 7,
                                                "cfg": 2.0, "max_tokens": 60})
    with client.stream("GET", f"/api/jobs/{r.json()['job']}/events") as s:
        last = sse_events("".join(s.iter_text()))[-1]
    seqs, images = sample(load_generator(generator_folder), [5, 5], seed=7, cfg=2.0, max_tokens=60)
    assert last["done"] and last["tokens"] == [len(q) for q in seqs]
    served = [np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))) for uri in last["images"]]
    assert all(np.array_equal(a.reshape(np.shape(b)), b) for a, b in zip(served, images, strict=True))
    whole = cut_atk(1.0)
    for extra in ({}, {"max_tokens": 20}):
        message = refused(client.post("/api/jobs/complete", data={"model": generator_folder.name, "n": 2, **extra},
                                      files={"file": ("whole.atk", whole, "application/octet-stream")}), 400)
        assert "whole sequence" in message and "whole.atk" in message
    assert client.post("/api/jobs/complete", data={"model": generator_folder.name, "n": 1, "max_tokens": 5},
                       files={"file": ("cut.atk", cut_atk(0.3), "application/octet-stream")}).status_code == 200


def test_work_whose_request_ended_is_not_started(monkeypatch):
    """Found by review: an encode (curve, comparison) whose request had already been answered 503
    (the time limit) still ran once a slot freed: a thread that began waiting late waited a time
    limit of its own, then worked for nobody while later requests waited. Made certain by a slot
    that frees only after the answer."""
    from adatok.serve import state

    go, ran = threading.Event(), []

    class Gate:
        def acquire(self, timeout=None):
            go.wait(10)
            return True

        def release(self):
            pass

    app = create_app(Limits(seconds=0.5))
    with local_client(app) as c:
        iid = c.post("/api/images", files={"file": ("p.png", png_bytes(photo(24)), "image/png")}).json()["image"]
        cid = c.post("/api/codings", data={"image": iid}).json()["coding"]
        app.state.server.slots = Gate()
        monkeypatch.setattr(state, "curve", lambda coding, stop: ran.append(coding) or {})
        assert "time limit" in refused(c.get(f"/api/codings/{cid}/curve"), 503)
        go.set()
        time.sleep(0.3)
        assert ran == []


def test_the_curve_of_an_image_longer_than_a_codec_encodes(client):
    """Found by review: a 1 x 20000 strip (under the pixel limit) was taken and coded, and its curve
    was a 500: libwebp encodes at most 16,383 pixels a side (Pillow's raw ValueError; libjpeg's limit
    of 65,500, an OSError). Now that codec has no points and a note; the others are drawn."""
    strip = (np.arange(20000) % 251).astype(np.uint8).reshape(1, 20000, 1)
    iid = client.post("/api/images", files={"file": ("strip.png", png_bytes(strip), "image/png")}).json()["image"]
    cid = client.post("/api/codings", data={"image": iid}).json()["coding"]
    r = client.get(f"/api/codings/{cid}/curve")
    assert r.status_code == 200, r.text
    codecs = {s["name"]: s for s in r.json()["codecs"]}
    assert codecs["webp"]["points"] == [] and "16,383 pixels a side" in codecs["webp"]["note"]
    assert codecs["jpeg"]["points"] and codecs["jpeg"]["note"] is None and codecs["jp2"]["points"]


@pytest.mark.parametrize("bad", [{"encoders": 0}, {"images": 0}, {"codings": -1}, {"generations": 0},
                                 {"max_pixels": 0}, {"max_upload_bytes": 0}, {"encoders": 1.5},
                                 {"updates": float("nan")}, {"updates": -1.0}])
def test_limits_are_checked(bad):
    """Found by review: Limits(encoders=0) made every encode wait out the time limit and get 503;
    images=0 (or codings=0) answered an upload with an id already dropped. Now refused in words."""
    with pytest.raises(adatok.AdatokError, match="Limits.|seconds"):
        Limits(**bad)


def test_a_job_whose_page_went_away_stops_waiting_for_its_turn():
    """Found by review: a job whose events were asked for and then dropped (the page closed) while
    another generation ran kept its thread waiting for a generation slot for the whole time limit:
    asking for jobs and hanging up piled up threads. Now it ends once its page has gone."""
    from adatok.serve.app import _run_job
    from adatok.serve.state import Job

    app = create_app(Limits(seconds=30))
    server = app.state.server
    assert server.gen_slots.acquire(timeout=1)  # another generation running
    ran, events = [], []
    job = Job(lambda emit, stop: ran.append(1))
    thread = threading.Thread(target=_run_job, args=(server, job, events.append), daemon=True)
    try:
        thread.start()
        time.sleep(0.2)
        job.cancel.set()  # the page went away
        thread.join(3)
        assert not thread.is_alive() and ran == [] and events == [None]
    finally:
        server.gen_slots.release()
    job = Job(lambda emit, stop: ran.append(1))
    _run_job(server, job, events.append)  # a free slot: the work runs
    assert ran == [1]


def test_error_messages_do_not_echo_a_whole_field(client, coded):
    """Found by review: a field of up to 1 MB (the form parser's limit) came back whole in the error
    message, escaped (a file part sent without a file name: its bytes, four times their size)."""
    iid = coded[0]
    blob = bytes(range(256)) * 2000
    cases = [client.post("/api/images", content=b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + blob
                         + b"\r\n--b--\r\n", headers={"Content-Type": "multipart/form-data; boundary=b"}),
             client.post("/api/codings", data={"image": iid, "tokenizer": "t" * 500_000}),
             client.post("/api/codings", data={"image": iid, "roi": "r" * 500_000}),
             client.post("/api/jobs/generate", data={"model": "m" * 500_000}),
             client.post("/api/jobs/generate", data={"model": "m", "seed": "1" * 4000})]
    for r in cases:
        assert len(refused(r, (400, 422))) < 400, r.text[:200]


def test_details_take_an_encoders_slot():
    """Found by review: the details (SSIM, error map, token heat map) ran on the four frame threads,
    outside the encoders' limit, and the heat map of a long prefix builds every token's place: four
    at once on a 1024x512 photo at full length took 1.9 GB. Now each takes an encoder's slot."""
    app = create_app(Limits(encoders=1, seconds=0.5))
    with local_client(app) as c:
        iid = c.post("/api/images", files={"file": ("p.png", png_bytes(photo(24)), "image/png")}).json()["image"]
        cid = c.post("/api/codings", data={"image": iid}).json()["coding"]
        slots = app.state.server.slots
        assert slots.acquire(timeout=1)  # an encode running
        try:
            assert "busy" in refused(c.get(f"/api/codings/{cid}/details", params={"tokens": 10}), 503)
            assert c.get(f"/api/codings/{cid}/frame", params={"tokens": 10}).status_code == 200  # frames do not wait
        finally:
            slots.release()
        assert c.get(f"/api/codings/{cid}/details", params={"tokens": 10}).status_code == 200


@pytest.mark.skipif(__import__("sys").platform == "win32", reason="POSIX signals")
def test_sighup_stops_the_server():
    """Found by review: the command line's SIGHUP handler (a closed terminal) raised its interrupt inside
    uvicorn's event loop: logged as a request's error, the server went on serving, and a second SIGHUP did
    nothing. Now SIGHUP shuts it down as SIGTERM does."""
    import signal
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from adatok.cli.app import run; sys.exit(run())",
                             "serve", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        assert "in a browser" in proc.stderr.readline()
        for _ in range(100):  # until it answers
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
                    assert reply.status == 200
                break
            except OSError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, (proc.returncode, err)


# ------------------------------------------------------------------------------------------------
# Found by an outside tester (2026-12): the PSNR slider, a gray mask, the 413 message, a tiny curve
# ------------------------------------------------------------------------------------------------


def psnr_frame(c, cid: str, target: float) -> dict:
    r = c.get(f"/api/codings/{cid}/frame", params={"psnr": target})
    assert r.status_code == 200, r.text
    return frame_of(r)[1]


def test_a_psnr_target_gives_the_learned_tokenizer_s_quality_prefix(client):
    """The server bisected the cuts taking PSNR to rise with k and gave the full sequence whenever it
    missed the target: fashion-mnist-6 at 23.273 dB got 32 tokens at 23.217 dB, where
    ``Quality(psnr=23.273)`` gives 30 at 23.283 (a learned tokenizer's PSNR does not rise with k).
    Now every target gets the library's prefix."""
    from adatok import Quality
    from adatok.serve.state import sample_image

    r = client.post("/api/samples/fashion-mnist-6")
    assert r.status_code == 200, r.text
    cid = client.post("/api/codings", data={"image": r.json()["image"], "tokenizer": "fashion-mnist-32"}).json()["coding"]
    img, tok = sample_image("fashion-mnist-6"), adatok.load("fashion-mnist-32")
    (seq,) = tok.encode([img])
    curve = [psnr(img, im) for im in tok.decode_prefixes(seq, range(len(seq) + 1))]
    for target in [23.273, *(v - 1e-3 for v in curve if np.isfinite(v))]:
        (want,) = tok.encode([img], Quality(psnr=float(target)))
        n = psnr_frame(client, cid, target)
        assert n["k"] == len(want), target
    n = psnr_frame(client, cid, 23.273)
    assert n["k"] == 30 and n["psnr"] >= 23.273  # (the full sequence, 32 tokens, is at 23.217 dB)


@pytest.mark.parametrize("name", ["wavelet", "wavelet-lossless"])
def test_a_psnr_target_gives_the_wavelet_quality_prefix_whatever_was_asked_before(name):
    """On small images the server's bisection over the cuts gave longer prefixes than the library's
    ``Quality(psnr=T)`` (which checks every shorter prefix there: PSNR does not always rise with
    k), and it narrowed each search by the PSNRs earlier ones measured, so the answer hung on what
    was asked before: 26.86 dB alone got 316 tokens, after other targets 322. Now each target's
    prefix is the library's, on a fresh server or after any other targets."""
    from adatok import Quality

    img = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    tok = adatok.load(name)
    want = {t: len(tok.encode([img], Quality(psnr=float(t)))[0]) for t in (*np.arange(12, 60, 2.0), 26.86, 34.5, 57.0)}
    with local_client(create_app()) as c:
        iid = c.post("/api/images", files={"file": ("n.png", png_bytes(img), "image/png")}).json()["image"]
        cid = c.post("/api/codings", data={"image": iid, "tokenizer": name}).json()["coding"]
        for t, k in want.items():
            assert psnr_frame(c, cid, t)["k"] == k, t
        again = {t: psnr_frame(c, cid, t)["k"] for t in reversed(want)}  # (and kept answers are the same)
        assert again == want
    with local_client(create_app()) as c:  # the same target alone, on a fresh server
        iid = c.post("/api/images", files={"file": ("n.png", png_bytes(img), "image/png")}).json()["image"]
        cid = c.post("/api/codings", data={"image": iid, "tokenizer": name}).json()["coding"]
        assert psnr_frame(c, cid, 26.86)["k"] == want[26.86]
    if name == "wavelet":
        assert (want[34.5], want[57.0]) == (431, 754)  # the tester's numbers (the server gave 433 and 760)


def test_a_psnr_target_of_a_steered_long_coding_is_the_library_s_prefix(client, tmp_path):
    """Past 65,536 tokens the slider's cuts are every step-th prefix, and the library's prefix for a
    target need not be one: the frame is that prefix, and so are the details and downloads the page
    asks for by its length (a length between cuts otherwise snaps to the cut below). With a region
    of interest, the prefix is the library's for the same region."""
    from PIL import Image as PILImage

    from adatok import Quality

    img = photo(160)
    mask = np.zeros((*img.shape[:2], 1), np.uint8)
    mask[40:100, 50:120] = 255
    (tmp_path / "m.png").write_bytes(png_bytes(mask))
    iid = client.post("/api/images", files={"file": ("p.png", png_bytes(img), "image/png")}).json()["image"]
    r = client.post("/api/codings", data={"image": iid, "tokenizer": "wavelet", "roi": "paint"},
                    files={"mask": ("m.png", png_bytes(mask), "image/png")})
    coding = r.json()
    assert coding["step"] > 1, coding  # (a long sequence: not every prefix is a cut)
    tok = adatok.load("wavelet")
    (want,) = tok.encode([img], Quality(psnr=31.0), roi=[tmp_path / "m.png"])
    assert len(want) % coding["step"]  # (the library's prefix is not a cut: the case this checks)
    cid = coding["coding"]
    pixels, n = frame_of(client.get(f"/api/codings/{cid}/frame", params={"psnr": 31.0}))
    assert n["k"] == len(want) and np.array_equal(pixels, tok.decode([want])[0])
    assert n["bytes"] == len(want.to_bytes())
    atk = client.get(f"/api/codings/{cid}/prefix.atk", params={"tokens": n["k"]})
    assert atk.content == want.to_bytes()
    png = client.get(f"/api/codings/{cid}/prefix.png", params={"tokens": n["k"]})
    assert np.array_equal(np.asarray(PILImage.open(io.BytesIO(png.content))).reshape(img.shape), pixels)
    assert client.get(f"/api/codings/{cid}/details", params={"tokens": n["k"]}).json()["k"] == n["k"]
    # any other length between cuts still snaps to the cut below
    assert frame_of(client.get(f"/api/codings/{cid}/frame", params={"tokens": n["k"] + 1}))[1]["k"] % coding["step"] == 0


def test_a_gray_painted_mask_steers_as_the_library_s(client, coded, tmp_path):
    """A mask painted in gray 100 (no pixel at 0.5 or more) was refused as "the painted region is
    empty", though ``encode(..., roi=[that file])`` (and ``adatok encode --roi``) steers with it.
    Now only a mask with nothing painted (all black) is refused; the coding is the library's, and
    its comparison has no pixel inside (the library counts a pixel inside from 0.5), not an error."""
    iid, _, img = coded
    gray = np.zeros((*img.shape[:2], 1), np.uint8)
    gray[20:60, 30:70] = 100
    (tmp_path / "gm.png").write_bytes(png_bytes(gray))
    r = client.post("/api/codings", data={"image": iid, "tokenizer": "wavelet", "roi": "paint"},
                    files={"mask": ("gm.png", png_bytes(gray), "image/png")})
    assert r.status_code == 200, r.text
    cid, k = r.json()["coding"], r.json()["tokens"]
    (seq,) = adatok.load("wavelet").encode([img], roi=[tmp_path / "gm.png"])
    assert client.get(f"/api/codings/{cid}/prefix.atk", params={"tokens": k}).content == seq.to_bytes()
    cmp = client.get(f"/api/codings/{cid}/compare", params={"bytes": 1200})
    assert cmp.status_code == 200, cmp.text
    assert cmp.json()["region_pixels"] == 0 and cmp.json()["with"]["inside"] is None
    black = client.post("/api/codings", data={"image": iid, "tokenizer": "wavelet", "roi": "paint"},
                        files={"mask": ("b.png", png_bytes(0 * gray), "image/png")})
    assert "empty" in refused(black, 400)


def test_the_413_message_names_the_configured_upload_limit():
    """A body over the limit plus the 64 KiB allowed for the form around the file was told the
    limit was 16,842,752 bytes, a file just over the limit 16,777,216: now both are told the limit
    the server was given."""
    limit = 50_000
    with local_client(create_app(Limits(max_upload_bytes=limit))) as c:
        assert c.get("/api/info").json()["limits"]["max_upload_bytes"] == limit
        for size in (limit + 100_000, limit + 1_000):  # over the body's limit; between the two
            r = c.post("/api/images", files={"file": ("big.png", b"\0" * size, "image/png")})
            assert "upload limit of 50,000 bytes" in refused(r, 413), size


def test_every_codec_without_points_on_the_curve_says_why(client):
    """A 1x1 image's curve had every codec with no points and no note: at 0.0625 to 2 bits per pixel
    its byte budgets are 0 bytes, none above the coding's empty file. A 24x24 noise image gets
    budgets, but JPEG's smallest file of it is over them all. Each such codec now says why."""
    rng = np.random.default_rng(0)
    for shape, words in (((1, 1, 3), "no byte budget"), ((24, 24, 3), "smallest file")):
        iid = client.post("/api/images", files={"file": ("t.png", png_bytes(rng.integers(0, 256, shape, np.uint8)),
                                                           "image/png")}).json()["image"]
        cid = client.post("/api/codings", data={"image": iid}).json()["coding"]
        codecs = client.get(f"/api/codings/{cid}/curve").json()["codecs"]
        assert any(not s["points"] and words in s["note"] for s in codecs), (shape, codecs)
        for s in codecs:
            assert (s["note"] is None) == bool(s["points"]), (shape, s)


# ------------------------------------------------------------------------------------------------
# Review of 2026-12-03: other sites, work after its request ended, messages
# ------------------------------------------------------------------------------------------------


def test_only_this_machine_s_names_and_pages_drive_the_server():
    """Found by review: no Host or Origin check, so a DNS-rebinding page (its own name resolving to
    127.0.0.1) or a form posted by any web site could drive the server. Now a Host other than
    127.0.0.1, localhost, ::1 and --host is 400 (Starlette's TrustedHostMiddleware), and a POST whose
    Origin is another site's is 403 in words; the page's own POSTs, and those without Origin, work."""
    app = create_app(Limits())
    upload = {"file": ("p.png", png_bytes(photo(24)), "image/png")}
    with local_client(app) as c:
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "10.0.0.1:8000"):
            r = c.get("/api/info", headers={"Host": host})
            assert r.status_code == 400, host
        for host in ("127.0.0.1", "127.0.0.1:8000", "localhost:8123", "LOCALHOST", "[::1]:8000"):
            assert c.get("/api/info", headers={"Host": host}).status_code == 200, host
        for origin in ("https://evil.example", "http://localhost", "http://127.0.0.1:8001", "null", "garbage"):
            message = refused(c.post("/api/images", files=upload, headers={"Origin": origin}), 403)
            assert "another site" in message and "http://127.0.0.1/" in message, message
        assert c.post("/api/images", files=upload).status_code == 200  # no Origin: not a browser's cross-site POST
        assert c.post("/api/images", files=upload, headers={"Origin": "http://127.0.0.1"}).status_code == 200
        assert c.post("/api/images", files=upload, headers={"Origin": "http://127.0.0.1:80"}).status_code == 200
        assert c.get("/api/info", headers={"Origin": "https://evil.example"}).status_code == 200  # reads: CORS's
    with TestClient(app, base_url="http://localhost:8123") as c:  # the port is the origin's: the page's POST passes
        assert c.post("/api/images", files=upload, headers={"Origin": "http://localhost:8123"}).status_code == 200
        assert refused(c.post("/api/images", files=upload, headers={"Origin": "http://localhost:8124"}), 403)
    for host, name in (("192.168.1.5", "192.168.1.5:8000"), ("fe80::1", "[fe80::1]:8000"), ("My-Box", "my-box")):
        with TestClient(create_app(Limits(), host=host), base_url=f"http://{name}") as c:
            assert c.get("/api/info").status_code == 200, host
            assert c.get("/api/info", headers={"Host": "other.example"}).status_code == 400


def _slow_work(log: list, seconds: float = 20.0):
    """A stand-in for long work that checks ``stop()`` between its steps, noting how it ended."""

    def work(*args, stop):
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < seconds:
                stop()
                time.sleep(0.02)
        except serve_state.Cancelled:
            log.append(("stopped", time.monotonic()))
            raise
        log.append(("ran out", time.monotonic()))
        return {}

    return work


def _wait_for(log: list, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not log and time.monotonic() < deadline:
        time.sleep(0.02)


def test_work_stops_when_its_request_times_out_or_its_client_goes(monkeypatch):
    """Found by review: work went on after its request had ended: a PSNR target's search for up to
    a minute after its 503, a prefix's details (2.7 GB at full length of a 1024x1024 image) after
    the page had gone. Now its ``stop()`` raises once the request is answered, runs past the time
    limit, or its client disconnects, and the work ends at its next step."""
    import httpx

    monkeypatch.setattr(serve_state, "curve", _slow_work(log := []))
    app = create_app(Limits(seconds=0.5))
    with local_client(app) as c:
        iid = c.post("/api/images", files={"file": ("p.png", png_bytes(photo(24)), "image/png")}).json()["image"]
        cid = c.post("/api/codings", data={"image": iid}).json()["coding"]
        t0 = time.monotonic()
        assert "time limit" in refused(c.get(f"/api/codings/{cid}/curve"), 503)
        _wait_for(log, 3)
        assert log and log[0][0] == "stopped" and log[0][1] - t0 < 2, log
    log.clear()
    app = create_app(Limits(seconds=30))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        iid = http.post("/api/images", files={"file": ("p.png", png_bytes(photo(24)), "image/png")}).json()["image"]
        cid = http.post("/api/codings", data={"image": iid}).json()["coding"]
        t0 = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):  # the client gives up, and closes its connection
            http.get(f"/api/codings/{cid}/curve", timeout=0.5)
        _wait_for(log, 5)
        assert log and log[0][0] == "stopped" and log[0][1] - t0 < 3, log  # long before the 30 s limit
        assert http.get("/api/info").status_code == 200


def _raising_after(n: int):
    calls = []

    def stop():
        calls.append(1)
        if len(calls) > n:
            raise serve_state.Cancelled

    return stop, calls


def test_the_details_and_a_psnr_search_stop_between_their_steps():
    """The steps the server's stop() is checked at: a prefix's details (the token heat map by runs of
    tokens, whose sum is the library's map: at once, the details of the 25 million tokens of a
    1024x1024 noise image peaked at 2.7 GB more) and a PSNR target's search, the library's (before
    each prefix it measures), with a region too."""
    from adatok.eval.maps import token_heatmap

    img = photo(64)
    tok = adatok.load("wavelet")
    for roi in (None, np.pad(np.ones((16, 16)), 24)):
        coding = serve_state.Coding("i", serve_state.Image("p", img), "wavelet", roi, None if roi is None else "painted")
        k = len(coding.prefixes) // 2
        coding.HEAT_CHUNK = 1000  # many runs
        expect = token_heatmap(coding.seq.prefix(k))
        assert np.allclose(coding.token_map(k), expect, rtol=1e-9, atol=1e-9)
        assert np.allclose(coding.token_map(0), 0)
        stop, calls = _raising_after(3)
        with pytest.raises(serve_state.Cancelled):
            coding.details(k, stop=stop)
        assert len(calls) == 4  # after the picture, after SSIM, before the heat map's first run, its second
        stop, calls = _raising_after(2)
        with pytest.raises(serve_state.Cancelled):
            coding.resolve(target=45.0, stop=stop)
        assert len(calls) == 3 and coding.resolve(target=45.0) == len(
            tok.encode([img], adatok.Quality(psnr=45.0), roi=None if roi is None else [roi])[0])


def test_messages_of_the_2026_12_03_review(client, coded, generator_folder):
    """Found by review: the curve's notes gave an image's size as W x H but WebP's as H x W; psnr=250
    was refused without the bound; a text sent as the upload was told pydantic's "Expected
    UploadFile, received: <class 'str'>"; a second stream of a job's events said "run already";
    --max-pixels over the library's 50,000,000 was lowered to it without a word."""
    from typer.testing import CliRunner

    from adatok.cli import app as cli

    rng = np.random.default_rng(0)
    notes = []
    for shape in ((2, 3, 3), (1, 20000, 1)):
        iid = client.post("/api/images", files={"file": ("t.png", png_bytes(rng.integers(0, 256, shape, np.uint8)),
                                                           "image/png")}).json()["image"]
        cid = client.post("/api/codings", data={"image": iid}).json()["coding"]
        notes += [(shape, s["name"], s["note"]) for s in client.get(f"/api/codings/{cid}/curve").json()["codecs"]
                  if s["note"]]
    assert {name for _, name, _ in notes} >= {"jpeg", "webp"}
    for shape, name, note in notes:  # ours (no budget: the 2x3 image) and the library's (WebP: the strip) alike
        assert f"{shape[0]:,}x{shape[1]:,} (H x W)" in note, (name, note)
    cid = coded[1]["coding"]
    assert "at most 200" in refused(client.get(f"/api/codings/{cid}/frame", params={"psnr": 250}), 422)
    message = refused(client.post("/api/images", data={"file": "photo.png"}), 422)
    assert "expected a file" in message and "UploadFile" not in message and "class" not in message, message
    job = client.post("/api/jobs/generate", data={"model": generator_folder.name, "n": 1, "max_tokens": 3}).json()
    assert sse_events(client.get(f"/api/jobs/{job['job']}/events").text)[-1]["done"]
    message = refused(client.get(f"/api/jobs/{job['job']}/events"), 400)
    assert "asked for already" in message and "start a new job" in message
    with pytest.raises(adatok.AdatokError, match="at most 50,000,000"):
        Limits(max_pixels=50_000_001)
    assert Limits(max_pixels=50_000_000).max_pixels == 50_000_000
    bad = CliRunner().invoke(cli, ["serve", "--max-pixels", "60000000"])
    assert bad.exit_code == 2 and "--max-pixels" in bad.stderr and "at most 50,000,000" in bad.stderr


# ------------------------------------------------------------------------------------------------
# Found by an outside user of the API (2026-12-03): methods, bodies that are not forms, messages
# ------------------------------------------------------------------------------------------------


def _png_of(array: np.ndarray, mode: str) -> bytes:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(array, mode).save(buf, "PNG")
    return buf.getvalue()


def test_a_405_says_which_methods_and_get_routes_answer_head(client, coded, generator_folder):
    """Found by review: a 405 came without its Allow header (the error handler rebuilt the response
    and dropped the exception's headers), and HEAD was refused with 405 on every GET route of the
    API, though the docs name it among the methods that change nothing. Now every 405 says Allow,
    and a GET route answers HEAD with a GET's headers and no body; a job's events are not started
    by a HEAD (the stream is the first GET's)."""
    from fastapi.routing import APIRoute

    iid, coding, _ = coded
    cid = coding["coding"]
    for path in ("/", "/api/info", f"/api/images/{iid}.png", f"/api/codings/{cid}/frame?tokens=50",
                 f"/api/codings/{cid}/prefix.png?tokens=50", "/static/app.js"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, (path, head.status_code, head.text)
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path
        assert head.headers.get("content-length") == get.headers.get("content-length"), path
    assert client.head(f"/api/codings/{cid}/frame?tokens=50").headers["X-Adatok-Frame"]
    assert client.head("/api/codings/nosuchcoding/frame?tokens=3").status_code == 404
    routes = [r for r in client.app.routes if isinstance(r, APIRoute) and "GET" in r.methods]
    assert routes and all("HEAD" in r.methods for r in routes), [r.path for r in routes if "HEAD" not in r.methods]
    job = client.post("/api/jobs/generate", data={"model": generator_folder.name, "n": 1, "max_tokens": 3}).json()
    head = client.head(f"/api/jobs/{job['job']}/events")
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")
    assert sse_events(client.get(f"/api/jobs/{job['job']}/events").text)[-1]["done"]  # the GET still has it
    for method, path, allow in (("DELETE", "/api/info", {"GET", "HEAD"}), ("POST", "/api/info", {"GET", "HEAD"}),
                                ("PUT", f"/api/images/{iid}.png", {"GET", "HEAD"}), ("GET", "/api/images", {"POST"}),
                                ("OPTIONS", "/api/codings", {"POST"}), ("POST", "/static/app.js", {"GET", "HEAD"})):
        r = client.request(method, path)
        message = refused(r, 405)
        assert {m.strip() for m in r.headers.get("allow", "").split(",")} == allow, (method, path, r.headers)
        assert method in message and all(m in message for m in allow), message


def test_a_body_that_is_not_a_form_is_told_to_be_one(client, coded, generator_folder):
    """Found by review: a JSON body, or an image sent as the body itself, was told "image: Field
    required" / "file: Field required" (the form parser finds no field in a body that is not a
    form). Now 415, naming the form to send and its fields."""
    iid = coded[0]
    image = png_bytes(photo(24))
    cases = [(client.post("/api/codings", json={"image": iid}), "image"),
             (client.post("/api/images", content=image, headers={"Content-Type": "image/png"}), "file"),
             (client.post("/api/images", content=image, headers={"Content-Type": ""}), "file"),
             (client.post("/api/jobs/generate", json={"model": generator_folder.name}), "model"),
             (client.post("/api/jobs/complete", content=cut_atk(),
                          headers={"Content-Type": "application/octet-stream"}), "file")]
    for r, field in cases:
        message = refused(r, 415)
        assert "multipart/form-data" in message and field in message and "required" not in message, message
    assert "x-www-form-urlencoded" in refused(cases[0][0], 415)  # (where a form without a file works)
    assert "x-www-form-urlencoded" not in refused(cases[1][0], 415)  # (a file needs multipart)
    assert client.post("/api/codings", data={"image": iid}).status_code == 200  # an urlencoded form works
    assert "required" in refused(client.post("/api/codings"), 422)  # nothing sent: the field is missing


def test_a_file_sent_for_a_text_field_is_told_in_words(client, coded, generator_folder):
    """Found by review: a file part sent where text belongs came back as pydantic's input, a Python
    repr: "image: Input should be a valid string (got UploadFile(filename='a.png', size=..., headers=
    Headers({..."."""
    image = ("a.png", png_bytes(photo(24)), "image/png")
    message = refused(client.post("/api/codings", files={"image": image}), 422)
    assert message == "image: expected an image id (text), got a file", message
    message = refused(client.post("/api/jobs/generate", data={"model": generator_folder.name},
                                  files={"label": image}), 422)
    assert message.startswith("label: expected a whole number (text), got a file"), message
    for message in (message, refused(client.post("/api/codings", data={"image": coded[0]}, files={"roi": image}), 422)):
        assert "UploadFile" not in message and "Headers" not in message and "filename=" not in message, message


def test_an_unknown_id_is_not_said_to_have_been_dropped(client):
    """Found by review: an id that never existed was told "this image is no longer on the server (it
    keeps the 16 most recent): load it again". The server cannot tell an unknown id from a dropped
    one: the message now says either may be so."""
    cases = [(client.post("/api/codings", data={"image": "nope"}), "image", "load the image"),
             (client.get("/api/codings/nope/frame", params={"tokens": 3}), "coding", "encode"),
             (client.get("/api/jobs/nope/events"), "job", "start")]
    for r, what, again in cases:
        message = refused(r, 404)
        assert "no longer" not in message and f"no {what} 'nope'" in message and "unknown" in message, message
        assert again in message, message
    with local_client(create_app(Limits(images=1))) as c:  # one dropped: the same words
        first = c.post("/api/images", files={"file": ("a.png", png_bytes(photo(24)), "image/png")}).json()["image"]
        c.post("/api/images", files={"file": ("b.png", png_bytes(photo(24)), "image/png")})
        message = refused(c.get(f"/api/images/{first}.png"), 404)
        assert "unknown" in message and "dropped" in message and "1 most recent image)" in message, message


def test_a_transparent_painted_mask_is_refused_in_plain_words(client, coded):
    """Found by review: "mask the painted region has transparent pixels, ..." (the library's "mask
    PATH has ..." with the upload's name put in for the path)."""
    iid, _, img = coded
    rgba = np.zeros((*img.shape[:2], 4), np.uint8)
    rgba[10:40, 10:40] = 255
    message = refused(client.post("/api/codings", data={"image": iid, "roi": "paint"},
                                  files={"mask": ("m.png", _png_of(rgba, "RGBA"), "image/png")}), 400)
    assert message.startswith("the painted region has transparent pixels"), message
    assert "mask the" not in message, message


def test_empty_repeated_and_unused_fields_are_refused(client, coded, generator_folder):
    """Found by review: an empty field took its default without a word (FastAPI reads "" in a form
    as a field left out: ``tokenizer=`` encoded with wavelet, ``max_tokens=`` wrote without a cap);
    of two file parts the last was taken; a mask sent with roi=none was ignored. Now each is refused,
    naming the field."""
    iid = coded[0]
    gen = generator_folder.name
    image = png_bytes(photo(24))
    mask = png_bytes(np.full((*coded[2].shape[:2], 1), 255, np.uint8))
    for r, field in [(client.post("/api/codings", data={"image": iid, "tokenizer": ""}), "tokenizer"),
                     (client.post("/api/codings", data={"image": iid, "roi": ""}), "roi"),
                     (client.post("/api/codings", data={"image": ""}), "image"),
                     (client.post("/api/jobs/generate", data={"model": gen, "max_tokens": ""}), "max_tokens"),
                     (client.post("/api/jobs/generate", data={"model": gen, "seed": ""}), "seed")]:
        message = refused(r, 422)
        assert message.startswith(f"{field} is empty"), message
    twice = client.post("/api/images", files=[("file", ("a.png", image, "image/png")),
                                              ("file", ("b.png", image, "image/png"))])
    assert refused(twice, 422).startswith("file was sent 2 times"), twice.text
    twice = client.post("/api/codings", data={"image": iid, "tokenizer": ["wavelet", "wavelet-lossless"]})
    assert refused(twice, 422).startswith("tokenizer was sent 2 times"), twice.text
    for roi in ("none", "auto"):
        message = refused(client.post("/api/codings", data={"image": iid, "roi": roi},
                                      files={"mask": ("m.png", mask, "image/png")}), 400)
        assert "mask" in message and "roi=paint" in message and f"roi={roi!r}" in message, message
    assert client.post("/api/codings", data={"image": iid, "roi": "paint"},
                       files={"mask": ("m.png", mask, "image/png")}).status_code == 200


def test_unknown_fields_and_query_parameters_are_refused(client, coded, generator_folder):
    """Found by review: a misspelt form field or query parameter was left unread without a word
    (``tokns=5`` or ``frame?token=5`` gave the default: the whole sequence), and of a query parameter
    given twice the last was taken. Now each is 422, naming it and what the request takes."""
    iid, cid = coded[0], coded[1]["coding"]
    message = refused(client.post("/api/codings", data={"image": iid, "tokeniser": "wavelet-lossless"}), 422)
    assert message.startswith("unknown field 'tokeniser': this request takes image, tokenizer, roi, mask (a file)"), message
    message = refused(client.post("/api/jobs/generate", data={"model": generator_folder.name, "class": 3, "nn": 2}), 422)
    assert message.startswith("unknown fields 'class', 'nn': this request takes model, label, n, seed, cfg"), message
    message = refused(client.post("/api/samples/astronaut", data={"x": "1"}), 422)
    assert "unknown field 'x'" in message and "takes no field" in message, message
    message = refused(client.get(f"/api/codings/{cid}/frame?token=5"), 422)
    assert message.startswith("unknown query parameter 'token': this request takes tokens, bytes, psnr"), message
    message = refused(client.get(f"/api/codings/{cid}/prefix.atk?tokens=5&tokens=9"), 422)
    assert message.startswith("tokens was given 2 times in the query"), message
    message = refused(client.get("/api/info?verbose=1"), 422)
    assert message.startswith("unknown query parameter 'verbose': this request takes none"), message
    # what the page sends is still read
    assert client.get(f"/api/codings/{cid}/frame?tokens=5").status_code == 200
    assert client.get(f"/api/codings/{cid}/details?tokens=5").status_code == 200
    assert client.get("/?anything=1").status_code == 200  # (the page itself: not the API)


def test_a_flattened_upload_says_so(client):
    """Found by review: an upload with transparency (RGBA, gray + alpha, a palette with a transparent
    colour) came back as 3 or 1 channels without a word, while ``adatok encode`` warns that its alpha
    was flattened onto white. Now the image's answer (and its codings') has ``flattened``."""
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)
    half = np.dstack([rgb, np.full((16, 16), 128, np.uint8)])
    opaque = np.dstack([rgb, np.full((16, 16), 255, np.uint8)])
    la = np.dstack([rgb[:, :, 0], np.where(rgb[:, :, 1] > 128, 255, 0).astype(np.uint8)])
    from PIL import Image as PILImage

    palette = PILImage.fromarray(rgb).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=8)
    palette.info["transparency"] = 0
    buf = io.BytesIO()
    palette.save(buf, "PNG", transparency=0)
    for name, data, channels, flattened in [("rgb.png", _png_of(rgb, "RGB"), 3, False),
                                            ("half.png", _png_of(half, "RGBA"), 3, True),
                                            ("opaque.png", _png_of(opaque, "RGBA"), 3, False),
                                            ("la.png", _png_of(la, "LA"), 1, True),
                                            ("palette.png", buf.getvalue(), 3, True)]:
        r = client.post("/api/images", files={"file": (name, data, "image/png")})
        assert r.status_code == 200, r.text
        assert (r.json()["channels"], r.json()["flattened"]) == (channels, flattened), (name, r.json())
        if name == "half.png":
            coding = client.post("/api/codings", data={"image": r.json()["image"]}).json()
            assert coding["flattened"] is True
    assert client.post("/api/samples/camera").json()["flattened"] is False
