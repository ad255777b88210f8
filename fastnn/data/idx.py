"""The IDX file format (MNIST's), read and written with the header checked against the data.

An IDX file is a header followed by the array's elements in C order, big-endian:

    bytes 0-1   zero
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d (at least 1)
    then        d sizes as big-endian uint32
    then        prod(sizes) elements of the type, nothing after them

So MNIST's image file starts with the magic number 0x00000803 (uint8, 3 dimensions) and its label
file with 0x00000801. Files may be gzip-compressed (recognised by their first bytes, whatever the
file name says). Every way a file can disagree with its own header is a ValueError naming the file.
"""
import gzip
import math
import os
import zlib

import numpy as np

# IDX type code -> big-endian NumPy dtype of the stored elements.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"


def read_idx_bytes(path):
    """The decompressed bytes of an IDX file, raw or gzip-compressed (told apart by content)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: gzip data is corrupt or truncated ({exc})") from exc


def parse_idx(data, name="IDX data"):
    """The array stored in the IDX bytes `data`, in native byte order.

    The header must describe exactly the bytes that follow it: a buffer that is too short is
    called truncated and one with bytes left over is refused too, since either means the file is
    not what its header says. uint8 arrays are read-only views of `data` (no copy).

    Raises:
        ValueError: anything that does not match the format, with `name` in the message.
    """
    data = memoryview(data).cast("B")
    if len(data) < 4:
        raise ValueError(f"{name}: {len(data)} bytes is too short for an IDX header (at least 4)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{name}: not an IDX file (magic number 0x{bytes(data[:4]).hex()} should start with two "
            "zero bytes; is it compressed with something other than gzip?)"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX element type 0x{type_code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(
            f"{name}: truncated header: {ndim} dimensions need {header_len} header bytes, "
            f"the file has {len(data)}"
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    actual = len(data) - header_len
    if actual < expected:
        raise ValueError(
            f"{name}: truncated: the header says shape {shape} of {dtype.newbyteorder('=').name} "
            f"({expected} data bytes) but only {actual} follow the header"
        )
    if actual > expected:
        raise ValueError(
            f"{name}: {actual - expected} unexpected bytes after the data: the header says shape "
            f"{shape} of {dtype.newbyteorder('=').name} ({expected} data bytes), {actual} follow it"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_idx(path):
    """The array in the IDX file at `path` (raw or .gz), its shape and dtype taken from the header.

    Returns:
        A NumPy array in native byte order (uint8 data comes back read-only, as a view of the
        file's bytes; copy it to write to it).

    Raises:
        ValueError: the file is not valid IDX, its gzip stream is corrupt, or its size does not
            match its header. FileNotFoundError: no such file.
    """
    return parse_idx(read_idx_bytes(path), name=os.fspath(path))


def write_idx(path, array, compress=None):
    """Writes `array` to `path` as an IDX file; gzip-compressed when compress is True, or when it is
    None and the name ends in .gz.

    Raises:
        TypeError: a dtype IDX cannot hold (uint8, int8, int16, int32, float32, float64 only).
        ValueError: a 0-d array or a dimension too large for the uint32 header field.
    """
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _TYPE_CODES:
        raise TypeError(f"write_idx: IDX cannot store dtype {array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: IDX stores 1 to 255 dimensions, got shape {array.shape}")
    if any(s >= 2**32 for s in array.shape):
        raise ValueError(f"write_idx: dimension sizes must fit in uint32, got shape {array.shape}")
    header = bytes([0, 0, _TYPE_CODES[native], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()
    path = os.fspath(path)
    if compress is None:
        compress = path.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, compresslevel=6)
    with open(path, "wb") as f:
        f.write(payload)
