"""A strict reader of multipart/x-mixed-replace JPEG streams for the tests."""
import http.client
import re


def read_mjpeg(host, port, path, frames, headers=None, timeout=20.0):
    """(response, [JPEG bytes] * frames): parses each part by its boundary and Content-Length
    and checks that every part is one whole JPEG (SOI at the start, EOI at the end)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    if response.status != 200:
        body = response.read()
        conn.close()
        return response, body
    match = re.fullmatch(r"multipart/x-mixed-replace;\s*boundary=(\S+)",
                         response.getheader("Content-Type", ""))
    assert match, response.getheader("Content-Type")
    boundary = match.group(1).encode()
    parts = []
    try:
        while len(parts) < frames:
            line = response.fp.readline()
            if line in (b"\r\n", b"\n"):
                continue
            assert line.rstrip(b"\r\n") == b"--" + boundary, line[:80]
            part_headers = {}
            while True:
                line = response.fp.readline().rstrip(b"\r\n")
                if not line:
                    break
                name, _, value = line.decode().partition(":")
                part_headers[name.strip().lower()] = value.strip()
            assert part_headers["content-type"] == "image/jpeg", part_headers
            data = response.fp.read(int(part_headers["content-length"]))
            assert data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9", "not a whole JPEG"
            parts.append(data)
    finally:
        conn.close()
    return response, parts
