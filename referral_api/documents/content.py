"""What a file is, by its own bytes (never its name), and images without their metadata.

Exactly four types are accepted, each recognised by its signature: PDF (`%PDF-`), JPEG (SOI marker
FF D8 FF), PNG (the 8-byte PNG signature) and HEIC (an ISO base media `ftyp` box of a HEIC brand).
Images are decoded and re-encoded from their pixels alone, so EXIF (GPS position, camera serial,
time), XMP, IPTC, comments and thumbnails are gone; the orientation is applied first so the picture
stays upright. PDFs are stored as sent.
"""

from __future__ import annotations

import io
import warnings

import pillow_heif
from PIL import Image, ImageOps

from ..errors import InvalidPayload, UnsupportedMediaType
from .models import MediaType

pillow_heif.register_heif_opener()

ALLOWED = ", ".join(m.value for m in MediaType)
MAX_PIXELS = 50_000_000  # a 50-megapixel photo; beyond that a decompression bomb is likelier than a scan
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_GENERIC = {b"mif1", b"msf1"}
_PIL_FORMAT = {MediaType.JPEG: "JPEG", MediaType.PNG: "PNG", MediaType.HEIC: "HEIF"}


def _is_heic(head: bytes) -> bool:
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    box = int.from_bytes(head[:4], "big")
    major = head[8:12]
    compatible = {head[i:i + 4] for i in range(16, min(box, len(head)) - 3, 4)}
    return major in _HEIC_BRANDS or (major in _HEIF_GENERIC and bool(compatible & _HEIC_BRANDS))


def sniff(head: bytes) -> MediaType:
    """The type of a file from its first bytes; 415 naming what is allowed when it is none of them."""
    if head.startswith(b"%PDF-"):
        return MediaType.PDF
    if head.startswith(b"\xff\xd8\xff"):
        return MediaType.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaType.PNG
    if _is_heic(head):
        return MediaType.HEIC
    raise UnsupportedMediaType(
        f"The file is not of an accepted type. Allowed: {ALLOWED}.",
        errors={"file": [f"not an accepted type (decided by its content, not its name); allowed: {ALLOWED}"]},
    )


def _unreadable(reason: str) -> InvalidPayload:
    return InvalidPayload(errors={"file": [reason]})


def strip_image(data: io.BytesIO, media_type: MediaType) -> io.BytesIO:
    """The image re-encoded from its pixels: no EXIF, GPS, camera serial, XMP, comments or thumbnails.

    `data` is emptied once the pixels are decoded, so the original and the copy never both sit whole
    in memory as Python objects.
    """
    fmt = _PIL_FORMAT[media_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(data, formats=[fmt])
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise _unreadable(f"the image has more than {MAX_PIXELS} pixels")
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _unreadable(f"the file starts like {media_type.value} but cannot be read as one") from None
    data.seek(0)
    data.truncate()
    upright = ImageOps.exif_transpose(image)
    mode = upright.mode
    if fmt == "JPEG" and mode not in {"RGB", "L", "CMYK"}:
        mode = "RGB"
    elif fmt != "JPEG" and mode not in {"RGB", "RGBA", "L", "LA"}:
        mode = "RGBA" if "A" in mode or "transparency" in upright.info else "RGB"
    pixels = upright if upright.mode == mode else upright.convert(mode)
    # A new image carries nothing but the pixels: image.info (exif, xmp, icc, comments) stays behind.
    clean = Image.new(mode, pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    options = {"quality": 90} if fmt in {"JPEG", "HEIF"} else {"optimize": False}
    clean.save(out, format=fmt, **options)
    out.seek(0)
    return out
