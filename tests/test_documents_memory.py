"""Peak memory while uploading and downloading a 20 MB file stays under 3x the file size.

Measured with tracemalloc (Python allocations, which is where a whole copy of the file would be),
not timed. The file is read from disk by the test client, so the test itself holds no copy of it.
"""

from __future__ import annotations

import hashlib
import tracemalloc

from tests.case_helpers import open_case

MIB = 1024 * 1024
SIZE = 20 * MIB


def _write_pdf(path) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        head = b"%PDF-1.7\n"
        out.write(head)
        digest.update(head)
        block = bytes(range(256)) * 4096  # 1 MiB
        written = len(head)
        while written < SIZE:
            piece = block[: min(len(block), SIZE - written)]
            out.write(piece)
            digest.update(piece)
            written += len(piece)
    return digest.hexdigest()


def test_peak_memory_of_a_20_mb_upload_and_download_is_under_3x(client, world, tmp_path):
    case_id = open_case(client, world)
    headers = world.headers("coordinator")
    path = tmp_path / "big.pdf"
    expected = _write_pdf(path)

    tracemalloc.start()
    try:
        with open(path, "rb") as fh:
            answer = client.post(
                f"/api/v1/cases/{case_id}/documents",
                data={"file": (fh, "big.pdf"), "kind": "police_report"},
                headers=headers,
                content_type="multipart/form-data",
            )
        _now, upload_peak = tracemalloc.get_traced_memory()
        assert answer.status_code == 201, answer.get_json()
        assert answer.get_json()["size"] == SIZE

        tracemalloc.reset_peak()
        download = client.get(answer.get_json()["content_url"], headers=headers, buffered=False)
        assert download.status_code == 200
        digest, received = hashlib.sha256(), 0
        for piece in download.response:
            digest.update(piece)
            received += len(piece)
        download.close()
        _now, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == SIZE and digest.hexdigest() == expected
    print(f"upload peak {upload_peak / MIB:.1f} MiB, download peak {download_peak / MIB:.1f} MiB, "
          f"file {SIZE / MIB:.0f} MiB")
    assert upload_peak < 3 * SIZE, upload_peak
    assert download_peak < 3 * SIZE, download_peak
    assert download_peak < SIZE  # streamed: the whole file is never in memory on the way out
