"""Sample files for the documents tests, made with the image library, and upload/download helpers."""

from __future__ import annotations

import io

import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()

MARKER = b"PLANTED-MARKER-7f3e9c1d-do-not-leak"
CAMERA_SERIAL = "CAMSERIAL-0042-9911"
GPS = {1: "N", 2: (47.0, 55.0, 12.5), 3: "E", 4: (106.0, 55.0, 2.0)}  # Ulaanbaatar


def pdf_bytes(size: int | None = None, marker: bytes = MARKER) -> bytes:
    """A small PDF carrying `marker` in clear text (PDFs are stored as sent), padded to `size`."""
    body = b"%PDF-1.7\n1 0 obj << /Title (" + marker + b") >> endobj\n"
    tail = b"\n%%EOF\n"
    if size is not None:
        body += b"0" * (size - len(body) - len(tail))
    return body + tail


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D"
    exif[0xA431] = CAMERA_SERIAL  # BodySerialNumber
    exif[0x0132] = "2026:11:20 10:00:00"
    exif.get_ifd(0x8825).update(GPS)
    return exif


def image_bytes(fmt: str, size=(96, 64), color=(180, 40, 40)) -> bytes:
    """An image of `fmt` (JPEG, PNG, HEIF) carrying EXIF with GPS position and a camera serial."""
    image = Image.new("RGB", size, color)
    out = io.BytesIO()
    image.save(out, format=fmt, exif=_exif().tobytes())
    return out.getvalue()


SAMPLES = {
    "application/pdf": (lambda: pdf_bytes(), "scan of consent.pdf"),
    "image/jpeg": (lambda: image_bytes("JPEG"), "passport Batbayar.jpg"),
    "image/png": (lambda: image_bytes("PNG"), "photo.png"),
    "image/heic": (lambda: image_bytes("HEIF"), "IMG_0001.HEIC"),
}
EXECUTABLE = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 200


def upload(client, world, parent: str, parent_id: str, data: bytes | io.IOBase, *, who="coordinator",
           kind="consent_form", name="file.pdf", note=None, scope=None):
    """POST a file to /api/v1/{parent}s/{id}/documents as `who`."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    form = {"file": (stream, name), "kind": kind}
    if note is not None:
        form["note"] = note
    return client.post(
        f"/api/v1/{parent}s/{parent_id}/documents",
        data=form,
        headers=world.headers(who, scope),
        content_type="multipart/form-data",
    )


def upload_ok(client, world, parent, parent_id, data, **kwargs) -> dict:
    answer = upload(client, world, parent, parent_id, data, **kwargs)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()
