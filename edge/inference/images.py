"""Reading image files: the one list of image extensions and the one decoder, used by the command
line, the folder source, the bench and the conversion's data sets.

A file is checked before it is decoded: its header's width and height must stay under
`MAX_PIXELS`, so a decompression bomb (a 60000 x 60000 PNG of a few kilobytes) is refused
instead of taking gigabytes of memory.
"""
import os
import struct

import cv2
import numpy as np

from edge.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_PIXELS = 64_000_000  # 64 megapixels: above any camera at a door, far below a bomb
_JPEG_SIZE_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def is_image_file(name):
    """True for a file name with one of the image extensions (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder):
    """The image files of a folder (not its subfolders), in name order."""
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if is_image_file(n) and os.path.isfile(os.path.join(folder, n)))


def _jpeg_size(data):
    """Width and height from the first start-of-frame segment, walking the segments' lengths
    (through EXIF and ICC segments of any size), or None."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _JPEG_SIZE_MARKERS:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def _bmp_size(data):
    if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _webp_size(data):
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 " and len(data) >= 30:
        return (int.from_bytes(data[26:28], "little") & 0x3FFF,
                int.from_bytes(data[28:30], "little") & 0x3FFF)
    return None


def header_size(data):
    """(width, height) read from a PNG, JPEG, BMP or WebP header without decoding, else None.
    `data` is the file's bytes (or a uint8 array of them)."""
    head = bytes(data[:64])
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(memoryview(data).cast("B"))  # walks the whole file, no copy
    if head[:2] == b"BM" and len(head) >= 26:
        return _bmp_size(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head)
    return None


def is_known_format(data):
    """True when the bytes start like a PNG, JPEG, BMP or WebP file (the formats whose size
    `header_size` reads before anything is decoded)."""
    head = bytes(data[:12])
    return (head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"BM"))
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"))


def decode_image(data, name):
    """Decode image bytes (a uint8 array) to BGR, or DataError naming `name` and the reason."""
    if data.size and not is_known_format(data):
        raise DataError(f"{name}: not a JPEG, PNG, BMP or WebP image (other formats are not "
                        "read: their size cannot be checked before decoding)")
    size = header_size(data)
    if size and size[0] * size[1] > MAX_PIXELS:
        raise DataError(f"{name}: {size[0]}x{size[1]} pixels ({size[0] * size[1] / 1e6:,.0f} "
                        f"megapixels) is over the limit of {MAX_PIXELS // 1_000_000} megapixels; "
                        "scale the image down")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(f"{name}: not a readable image (JPEG, PNG, BMP, WebP ...)")
    return image


def read_image(path):
    """Decode an image file to BGR, or DataError naming the file and what is wrong."""
    if os.path.isdir(path):
        raise DataError(f"{path}: a folder, not an image file")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return decode_image(data, path)
