"""The reader layer: what may be read, and bytes that are whole and say what they are.

Every input byte synthgate reads comes through here, so three promises hold for every format:

- only regular files are read. A FIFO would block forever, a symlink to /dev/zero would be read
  until memory runs out, a socket or device is not data. Named directly, such a path is refused
  saying what it is (a FIFO, a symbolic link loop, a broken link), never "file not found";
  swept up by a glob or a directory walk under a data file's name, it is refused the same way
  (skipping it would silently drop what the user may have meant as data). The check is made
  on the open file descriptor (`fstat`), so a file swapped for a FIFO between the listing and
  the read is caught too, and the open itself never blocks (`O_NONBLOCK`).
- a compressed stream is read to its verified end. gzip checks its CRC and length trailer;
  a zstd stream is decoded frame by frame and each frame must reach its end: zstandard's
  `stream_reader` returns a short read for a truncated file without a word, which turned a
  cut-off download into "0 synthetic records, gate PASSED".
- text is UTF-8 by the time a parser sees it: a UTF-8 BOM is dropped, UTF-16 and UTF-32 with a
  BOM are re-encoded, and UTF-16/32 *without* a BOM (recognizable by its NUL bytes, which no
  UTF-8 text file holds) is refused naming the encoding it looks like, instead of "malformed
  JSON at column 2".

Files on other filesystems (`s3://`, `gs://`, `hf://`, `memory://`, any fsspec URL) are
`RemoteFile`s: read through fsspec, then decompressed, verified and re-encoded by the same code
as local files. The regular-file checks are the local filesystem's; a remote store has no FIFOs.
"""

from __future__ import annotations

import codecs
import errno
import gzip
import io
import os
import stat
from pathlib import Path, PurePosixPath


class InputError(ValueError):
    """Input that cannot be used at all; the message names file, line/row and field."""


def _kind(mode: int) -> str | None:
    """What a non-regular, non-directory file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def path_kind(path: Path) -> str:
    """'file', 'directory', or raises InputError saying what the path is instead.

    Follows symbolic links, as reading does; a link is judged by what it points to.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(f"{path}: broken symbolic link (it points to "
                             f"{os.readlink(path)}, which does not exist)") from None
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: symbolic link loop (the link never reaches a file)"
                             ) from None
        if exc.errno == errno.EACCES:
            raise InputError(f"{path}: permission denied") from None
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    kind = _kind(st.st_mode)
    if kind is not None:
        target = f" (a symbolic link to {os.path.realpath(path)})" if os.path.islink(path) \
            else ""
        raise InputError(f"{path}: is {kind}{target}, not a regular file; only regular "
                         f"files are read")
    return "file"


def open_regular(path: Path):
    """Opens a regular file for reading in binary; refuses anything else without blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        path_kind(path)   # says what the path is (loop, broken link, ...)
        raise
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise InputError(f"{path}: is {kind}, not a regular file; only regular files are "
                             f"read")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_zstd(fh) -> bytes:
    """Every frame of a zstd file, each verified to reach its end."""
    import zstandard

    data = fh.read()
    if not data:
        return b""
    dctx = zstandard.ZstdDecompressor()
    out = []
    while data:
        frame = dctx.decompressobj()
        out.append(frame.decompress(data))
        if not frame.eof:
            raise EOFError("truncated zstd stream: the last frame ends before its end mark")
        data = frame.unused_data
    return b"".join(out)


class RemoteFile:
    """A file on an fsspec filesystem: `url` is what messages name (credentials never appear:
    they live in the filesystem's options, not the URL we keep), `fs` and `path` open it. It
    answers what format detection and naming ask of a Path (name, stem, suffixes, parent)."""

    def __init__(self, url: str, fs, path: str):
        self.url, self.fs, self.path = url, fs, path
        self._pure = PurePosixPath(path)

    name = property(lambda self: self._pure.name)
    stem = property(lambda self: self._pure.stem)
    suffixes = property(lambda self: self._pure.suffixes)
    parent = property(lambda self: self._pure.parent)

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemoteFile({self.url!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RemoteFile) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)


def _open(path):
    """A binary stream of a local regular file or a RemoteFile."""
    if isinstance(path, RemoteFile):
        return path.fs.open(path.path, "rb")
    return open_regular(path)


def read_bytes(path: Path | RemoteFile, compression: str | None) -> bytes:
    """The whole (decompressed) content of a regular file; InputError naming the file when
    it cannot be read or its compressed stream is cut short or corrupt."""
    try:
        with _open(path) as fh:
            if compression == ".gz":
                with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                    return gz.read()
            if compression == ".zst":
                return _read_zstd(fh)
            return fh.read()
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except EOFError as exc:
        raise InputError(f"{path}: truncated {compression} stream: the file ends before its "
                         f"data does (a partial download or copy?) ({exc})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except MemoryError:
        raise InputError(f"{path}: too large to read into memory") from None
    except Exception as exc:  # zstandard.ZstdError, zlib.error; a remote store's own errors
        what = "decompress" if compression else "read"
        raise InputError(f"{path}: cannot {what} ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- encodings

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# UTF-32 first: its little-endian BOM begins with UTF-16's.


def bomless_wide_encoding(data: bytes) -> str | None:
    """'UTF-16-LE', 'UTF-16-BE', 'UTF-32-LE' or 'UTF-32-BE' when `data` looks like that
    encoding without a BOM, else None.

    Text in those encodings puts NUL bytes at fixed offsets (every ASCII character, and JSON
    and CSV syntax is ASCII); UTF-8 text never holds a NUL. The sample is the first 4 KiB, and
    the pattern must hold for most code units, not a stray NUL.
    """
    head = data[:4096]
    if b"\x00" not in head:
        return None
    n4 = len(head) // 4 * 4
    if n4 >= 4:
        units = [head[i:n4:4] for i in range(4)]
        zeros = [u.count(0) / len(u) for u in units]
        if zeros[1] > 0.9 and zeros[2] > 0.9 and zeros[3] > 0.9:
            return "UTF-32-LE"
        if zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[2] > 0.9:
            return "UTF-32-BE"
    n2 = len(head) // 2 * 2
    if n2 >= 2:
        even, odd = head[0:n2:2], head[1:n2:2]
        if odd.count(0) / len(odd) > 0.5 and even.count(0) < 0.1 * len(even):
            return "UTF-16-LE"
        if even.count(0) / len(even) > 0.5 and odd.count(0) < 0.1 * len(odd):
            return "UTF-16-BE"
    return None


def to_utf8(data: bytes, path: Path) -> bytes:
    """UTF-8 without a BOM: a BOM says the encoding (dropped, or re-encoded from UTF-16/32);
    UTF-16/32 without a BOM is refused naming the encoding it looks like."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            body = data[len(bom):]
            if encoding == "utf-8":
                return body
            return body.decode(encoding, errors="replace").encode("utf-8", "surrogatepass")
    wide = bomless_wide_encoding(data)
    if wide is not None:
        raise InputError(f"{path}: the text looks like {wide} without a byte-order mark; "
                         f"save it as UTF-8 (e.g. iconv -f {wide} -t UTF-8) or with a BOM")
    return data


def read_text_file(path: Path, compression: str | None) -> bytes:
    """read_bytes + to_utf8: the UTF-8 bytes of a text format file."""
    return to_utf8(read_bytes(path, compression), path)


def parquet_source(path: Path, compression: str | None):
    """What pyarrow reads a Parquet file from (use it in a `with`): the decompressed bytes,
    or the open regular file (never the path, which pyarrow would open unchecked)."""
    if compression or isinstance(path, RemoteFile):
        return io.BytesIO(read_bytes(path, compression))
    try:
        return open_regular(path)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
