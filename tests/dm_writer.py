"""A minimal Gatan DigitalMicrograph ``.dm3``/``.dm4`` writer for the tests (rosettasciio reads DM files
but does not write them).  It writes what DigitalMicrograph writes for a spectrum or a spectrum image
and what rosettasciio's reader needs: ``ImageList/TagGroup0`` with ``ImageData`` (``Data``,
``DataType`` 2 = float32, ``Dimensions``, ``Calibrations/Dimension`` with ``Origin``/``Scale``/
``Units`` per axis, ``Brightness``), ``ImageTags/Meta Data`` (``Signal`` "EELS", ``Format``) and ``Name``.

Layout (both versions): a big-endian header (version, root size, byte order 1 = little-endian data),
then tag groups; tag structure big-endian, data little-endian.  DM4 has 8-byte counts and a size
before every tag, DM3 4-byte counts.  DM dimension 0 is x (the fastest axis): an array of NumPy shape
(E, ny, nx) is written as dimensions (nx, ny, E) - a spectrum image is stored energy-first, as
DigitalMicrograph does.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


class _Writer:
    def __init__(self, version: int):
        self.v = version

    def count(self, n: int) -> bytes:
        return struct.pack(">Q" if self.v == 4 else ">i", n)

    def _tag(self, tag_id: int, name: str, body: bytes) -> bytes:
        nm = name.encode("latin-1")
        size = struct.pack(">Q", len(body)) if self.v == 4 else b""
        return struct.pack(">bH", tag_id, len(nm)) + nm + size + body

    def group(self, name: str, items: list[bytes]) -> bytes:
        return self._tag(20, name, b"\x00\x00" + self.count(len(items)) + b"".join(items))

    def data(self, name: str, info: list[int], payload: bytes) -> bytes:
        body = b"%%%%" + self.count(len(info)) + b"".join(self.count(i) for i in info) + payload
        return self._tag(21, name, body)

    def long(self, name: str, value: int) -> bytes:
        return self.data(name, [3], struct.pack("<i", value))

    def float(self, name: str, value: float) -> bytes:
        return self.data(name, [6], struct.pack("<f", value))

    def text(self, name: str, value: str) -> bytes:  # DM strings: arrays of uint16
        return self.data(name, [20, 4, len(value)], struct.pack(f"<{len(value)}H", *map(ord, value)))

    def floats(self, name: str, arr: np.ndarray) -> bytes:
        a = np.ascontiguousarray(arr, dtype="<f4").reshape(-1)
        return self.data(name, [20, 6, a.size], a.tobytes())


def write_dm(
    path: str | Path,
    data: np.ndarray,
    offsets: list[float],
    scales: list[float],
    units: list[str],
    *,
    version: int = 4,
    spectrum_image: bool | None = None,
    signal: str = "EELS",
    title: str = "O K-edge",
) -> Path:
    """Write ``data`` (NumPy order, e.g. (L,) or (E, ny, nx)) with per-axis ``offsets``, ``scales`` and
    ``units`` (NumPy axis order, calibrated value = offset + scale * i) as a DM3/DM4 file."""
    w = _Writer(version)
    data = np.asarray(data, dtype=np.float32)
    assert len(offsets) == len(scales) == len(units) == data.ndim
    dims = list(data.shape)[::-1]  # DM dimension 0 = the fastest (last NumPy) axis
    cal_dims = []
    for k in reversed(range(data.ndim)):
        origin = -offsets[k] / scales[k] if scales[k] else 0.0
        cal_dims.append(
            w.group("", [w.float("Origin", origin), w.float("Scale", scales[k]), w.text("Units", units[k])])
        )
    image_data = w.group(
        "ImageData",
        [
            w.group(
                "Calibrations",
                [
                    w.group("Brightness", [w.float("Origin", 0.0), w.float("Scale", 1.0), w.text("Units", "counts")]),
                    w.group("Dimension", cal_dims),
                ],
            ),
            w.floats("Data", data),
            w.long("DataType", 2),
            w.group("Dimensions", [w.long("", d) for d in dims]),
            w.long("PixelDepth", 4),
        ],
    )
    if spectrum_image is None:
        spectrum_image = data.ndim == 3
    meta = [w.text("Signal", signal), w.text("Format", "Spectrum image" if spectrum_image else "Spectrum")]
    image = w.group("", [image_data, w.group("ImageTags", [w.group("Meta Data", meta)]), w.text("Name", title)])
    root = w.group("ImageList", [image])
    body = b"\x01\x01" + w.count(1) + root
    head = struct.pack(">i", version) + (struct.pack(">Q", len(body)) if version == 4 else struct.pack(">i", len(body)))
    path = Path(path)
    path.write_bytes(head + struct.pack(">i", 1) + body + b"\x00" * 8)
    return path
