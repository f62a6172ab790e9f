"""Reading image files: sizes from headers, decompression bombs refused before decoding, and one
clear error per bad file."""
import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from edge.errors import DataError
from edge.inference.images import MAX_PIXELS, decode_image, header_size, read_image


def bomb_png(width, height):
    """A PNG of a few hundred bytes whose header (a valid IHDR with its CRC) says width x height:
    8-bit RGB, and one tiny compressed IDAT."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b""))


def picture(width, height):
    """A BGR image with some structure (so every encoder has something to encode)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([(x * 7) % 256, (y * 5) % 256, ((x + y) * 3) % 256]).astype(np.uint8)


@pytest.mark.parametrize("ext, params", [
    (".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".bmp", []),
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),  # lossy: VP8
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossless: VP8L
])
@pytest.mark.parametrize("width, height", [(53, 37), (640, 360), (1, 1)])
def test_the_header_size_is_the_true_size(ext, params, width, height):
    ok, encoded = cv2.imencode(ext, picture(width, height), params)
    assert ok
    assert header_size(encoded) == (width, height)
    assert header_size(encoded.tobytes()) == (width, height)
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == (height, width)  # the truth the header is compared with


def test_a_jpeg_size_is_found_behind_large_metadata_segments():
    ok, encoded = cv2.imencode(".jpg", picture(300, 200))
    data = encoded.tobytes()
    app = b"Exif\0\0" + bytes(65000)  # two APPn segments of ~64 KB each: SOF is past 128 KB
    segment = b"\xff\xe1" + struct.pack(">H", len(app) + 2) + app
    padded = data[:2] + segment + segment + data[2:]
    assert header_size(padded) == (300, 200)
    assert cv2.imdecode(np.frombuffer(padded, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (200, 300)


def test_unknown_or_truncated_data_has_no_header_size():
    assert header_size(b"") is None
    assert header_size(b"GIF89a\x01\x00\x01\x00") is None
    assert header_size(b"\xff\xd8\xff\xe0\x00") is None


@pytest.mark.parametrize("width, height", [(60000, 60000), (20000, 20000)])
def test_a_decompression_bomb_is_refused_from_its_header(width, height):
    data = np.frombuffer(bomb_png(width, height), np.uint8)
    assert data.size < 1000 and header_size(data) == (width, height)
    with pytest.raises(DataError) as caught:
        decode_image(data, "bomb.png")
    message = str(caught.value)
    assert message.startswith(f"bomb.png: {width}x{height} pixels")
    assert f"over the limit of {MAX_PIXELS // 1_000_000} megapixels" in message


def test_an_image_at_the_limit_is_not_refused_for_its_size():
    side = int(MAX_PIXELS ** 0.5)  # a header just under the limit: decoding is tried (and fails)
    with pytest.raises(DataError, match="not a readable image"):
        decode_image(np.frombuffer(bomb_png(side, side), np.uint8), "big.png")


def test_read_image_names_the_file_and_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match="missing.jpg: no such image file"):
        read_image(str(tmp_path / "missing.jpg"))
    with pytest.raises(DataError, match="a folder, not an image file"):
        read_image(str(tmp_path))
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="empty.jpg: not a readable image"):
        read_image(str(tmp_path / "empty.jpg"))
    ok, encoded = cv2.imencode(".png", picture(20, 10))
    (tmp_path / "fine.png").write_bytes(encoded.tobytes())
    assert read_image(str(tmp_path / "fine.png")).shape == (10, 20, 3)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_a_file_without_read_permission_is_named(tmp_path):
    path = tmp_path / "secret.jpg"
    ok, encoded = cv2.imencode(".jpg", picture(20, 10))
    path.write_bytes(encoded.tobytes())
    path.chmod(0)
    with pytest.raises(DataError, match="secret.jpg: cannot be read"):
        read_image(str(path))


def test_a_format_whose_size_cannot_be_read_first_is_refused(tmp_path):
    """A TIFF (here named .jpg) would be decoded whatever its size: it is refused before decoding."""
    image = np.zeros((8, 8, 3), np.uint8)
    ok, tiff = cv2.imencode(".tiff", image)
    assert ok
    path = tmp_path / "door.jpg"
    path.write_bytes(tiff.tobytes())
    with pytest.raises(DataError, match="not a JPEG, PNG, BMP or WebP image"):
        read_image(str(path))
