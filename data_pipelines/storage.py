"""The one path layer: every file bertjax reads or writes goes through this module.

Paths are strings; three kinds are served, chosen by the scheme:

  local        `relative/dir`, `/abs/file`, `file:///abs`   os file system (through etils.epath)
  object store `gs://bucket/key` (also s3://, az://, hf://)  etils.epath on fsspec; gcsfs for gs://
  TF-only      `ram://...` and any other scheme that only   tf.io.gfile
               TensorFlow's file systems know

Why fsspec for gs://: the same client serves our own files (metrics.jsonl, predictions,
exports, sweep results, manifests) and orbax's metadata (orbax goes through etils.epath, which we
point at fsspec with etils' own `EPATH_USE_TF=false`, set here unless the user set it). gcsfs
honours the standard `STORAGE_EMULATOR_HOST`, so the whole path can be tested against a local GCS
emulator; orbax writes the arrays themselves with tensorstore (`TENSORSTORE_GCS_HTTP_URL`).
TensorFlow keeps its own GCS client for what it reads and writes itself (tf.data record files,
TensorBoard events); those receive the same path strings.

Relative local paths are made absolute with `absolute` wherever a library needs it (orbax refuses
relative checkpoint paths). Outputs that replace something are written with `atomic_write`
(temporary file, then rename), so a kill mid-write never leaves a truncated file behind; an
object-store upload is already all-or-nothing and is written in place.

`expand_patterns` is the one file-pattern expander: comma-separated or listed patterns, globbed on
any scheme, each pattern's matches sorted, a pattern that matches nothing an error naming it.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import uuid
from typing import IO, Iterator, Sequence

# Must precede etils' first look at a remote path (it caches the choice): see the docstring.
os.environ.setdefault("EPATH_USE_TF", "false")

from etils import epath  # noqa: E402

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_EPATH_SCHEMES = ("gs", "s3", "az", "hf")
_GLOB_MAGIC = re.compile(r"[*?[]")


class StorageError(OSError):
    """A path could not be read or written; the message names the path."""


def scheme(path: str | os.PathLike) -> str | None:
    """"gs" for gs://..., None for a local path (file:// counts as local)."""
    match = _SCHEME.match(os.fspath(path))
    if match is None or match.group(1).lower() == "file":
        return None
    return match.group(1).lower()


def is_remote(path: str | os.PathLike) -> bool:
    return scheme(path) is not None


def _uses_tf(path: str) -> bool:
    kind = scheme(path)
    return kind is not None and kind not in _EPATH_SCHEMES


def _local(path: str) -> str:
    path = os.fspath(path)
    return path[len("file://"):] if path.startswith("file://") else path


def _gfile():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tf.io.gfile


def _epath(path: str) -> epath.Path:
    return epath.Path(_local(path))


def absolute(path: str | os.PathLike) -> str:
    """Local paths made absolute (against the current directory); URIs unchanged."""
    path = os.fspath(path)
    if is_remote(path):
        return path
    return os.path.abspath(os.path.expanduser(_local(path)))


def join(path: str | os.PathLike, *parts: str) -> str:
    """Joins with "/" for URIs (whatever the OS) and os.path.join for local paths."""
    path = os.fspath(path)
    if is_remote(path):
        return posixpath.join(path, *parts)
    return os.path.join(path, *parts)


def dirname(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    return posixpath.dirname(path.rstrip("/")) if is_remote(path) else os.path.dirname(path)


def basename(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    return posixpath.basename(path.rstrip("/")) if is_remote(path) else os.path.basename(path)


def exists(path: str | os.PathLike) -> bool:
    path = os.fspath(path)
    return _gfile().exists(path) if _uses_tf(path) else _epath(path).exists()


def isdir(path: str | os.PathLike) -> bool:
    path = os.fspath(path)
    return _gfile().isdir(path) if _uses_tf(path) else _epath(path).is_dir()


def isfile(path: str | os.PathLike) -> bool:
    path = os.fspath(path)
    if _uses_tf(path):
        return _gfile().exists(path) and not _gfile().isdir(path)
    return _epath(path).is_file()


def size(path: str | os.PathLike) -> int:
    """Bytes in the file at `path`."""
    path = os.fspath(path)
    return _gfile().stat(path).length if _uses_tf(path) else _epath(path).stat().length


def makedirs(path: str | os.PathLike) -> None:
    """Creates `path` and its parents; an existing folder is fine, an existing file is not."""
    path = os.fspath(path)
    if isfile(path):
        raise StorageError(f"{path} is a file; a folder is needed there")
    try:
        if _uses_tf(path):
            _gfile().makedirs(path)
        else:
            _epath(path).mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as error:
        if isinstance(error, StorageError):
            raise
        raise StorageError(f"cannot create folder {path}: {error}") from error


def check_writable(folder: str | os.PathLike) -> None:
    """Creates `folder` and proves it writable by writing and removing a small probe file.

    Runs before a job spends minutes building its model: a missing bucket, a folder without
    write permission or a file where the folder should be fails here with the path named, not
    at the first checkpoint.
    """
    folder = os.fspath(folder)
    makedirs(folder)
    probe = join(folder, f".write-probe-{uuid.uuid4().hex[:12]}")
    try:
        with open(probe, "wb") as writer:
            writer.write(b"ok")
        remove(probe)
    except (OSError, ValueError) as error:
        raise StorageError(f"cannot write to {folder}: {error}") from error


def listdir(path: str | os.PathLike) -> list[str]:
    """Names (not paths) in the folder `path`, sorted."""
    path = os.fspath(path)
    if _uses_tf(path):
        return sorted(name.rstrip("/") for name in _gfile().listdir(path))
    return sorted(child.name for child in _epath(path).iterdir())


def remove(path: str | os.PathLike) -> None:
    path = os.fspath(path)
    if _uses_tf(path):
        _gfile().remove(path)
    else:
        _epath(path).unlink()


def rmtree(path: str | os.PathLike) -> None:
    path = os.fspath(path)
    if _uses_tf(path):
        _gfile().rmtree(path)
    else:
        _epath(path).rmtree()


def rename(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Moves `source` over `target` (replacing it). Atomic on local file systems; a copy then
    delete on object stores."""
    source, target = os.fspath(source), os.fspath(target)
    if _uses_tf(source) or _uses_tf(target):
        _gfile().rename(source, target, overwrite=True)
    else:
        _epath(source).replace(_epath(target))


def copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    source, target = os.fspath(source), os.fspath(target)
    if _uses_tf(source) or _uses_tf(target):
        _gfile().copy(source, target, overwrite=True)
    else:
        _epath(source).copy(_epath(target), overwrite=True)


def open(path: str | os.PathLike, mode: str = "r") -> IO:  # pylint: disable=redefined-builtin
    """A file object for `path` ("r", "rb", "w", "wb", "a"); text is UTF-8. Appending works on
    local and TensorFlow file systems only; on object stores it is refused (not silently turned
    into an overwrite).

    Errors name the path: a missing file is FileNotFoundError, other failures StorageError.
    """
    path = os.fspath(path)
    if "a" in mode and scheme(path) in _EPATH_SCHEMES:
        # Objects are immutable: gcsfs would silently replace the object instead of appending.
        raise StorageError(f"cannot append to {path}: object stores rewrite whole objects "
                           "(read it, then write_text the result)")
    try:
        if _uses_tf(path):
            if "r" in mode and not _gfile().exists(path):
                raise FileNotFoundError(f"no such file: {path}")
            return _gfile().GFile(path, mode)
        if "b" in mode:
            return _epath(path).open(mode)
        return _epath(path).open(mode, encoding="utf-8")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"no such file: {path}") from error
    except IsADirectoryError as error:
        raise StorageError(f"{path} is a folder, not a file") from error
    except PermissionError as error:
        raise StorageError(f"permission denied: {path}") from error


def read_text(path: str | os.PathLike) -> str:
    with open(path, "r") as reader:
        return reader.read()


def read_bytes(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as reader:
        return reader.read()


def not_utf8(path: str | os.PathLike, error: UnicodeDecodeError) -> ValueError:
    """The error to raise when text read from `path` is not UTF-8: it names the file and the
    first line that does not decode (text readers decode in chunks, so `error` has no line;
    the file is read again, which costs nothing on the success path)."""
    with open(path, "rb") as reader:
        for number, raw in enumerate(reader, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return ValueError(f"{path}, line {number}: not UTF-8 ({error.reason}); "
                                  "save the file as UTF-8")
    return ValueError(f"{path}: not UTF-8 ({error})")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Writes `path` all or nothing: a temporary file beside it, renamed over it on success.

    If the block raises (or the process dies) the previous content of `path`, if any, is
    untouched and the temporary file is removed (or, after a kill, left with a `.tmp-` name
    that readers never open). Object stores upload in one piece, so there the object is written
    in place: its old version stays readable until the upload completes, and a block that
    raises abandons the upload instead of completing it.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    parent = dirname(path)
    if parent:
        makedirs(parent)
    if scheme(path) in _EPATH_SCHEMES:
        writer = open(path, mode)
        try:
            yield writer
        except BaseException:
            _abandon(writer)
            raise
        writer.close()
        return
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with open(temporary, mode) as writer:
            yield writer
        rename(temporary, path)
    except BaseException:
        if exists(temporary):
            remove(temporary)
        raise


def _abandon(writer: IO) -> None:
    """Drops an object-store upload without completing it (closing would upload the part
    written so far, replacing the old object with a truncated one)."""
    # Binary mode gives fsspec's file itself; text mode wraps it (as `.buffer`).
    raw = writer if hasattr(writer, "discard") else getattr(writer, "buffer", writer)
    if hasattr(raw, "discard"):
        raw.discard()  # cancels a multi-part upload; a small one was never sent
        raw.closed = True  # so that no later close() (or garbage collection) uploads it
    else:
        writer.close()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically replaces `path` with `text`."""
    with atomic_write(path, "w") as writer:
        writer.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically replaces `path` with `data`."""
    with atomic_write(path, "wb") as writer:
        writer.write(data)


def has_glob(pattern: str) -> bool:
    return bool(_GLOB_MAGIC.search(pattern))


def glob(pattern: str) -> list[str]:
    """Sorted paths matching `pattern` (*, ?, [..] in any component), on any scheme."""
    if _uses_tf(pattern):
        return sorted(_gfile().glob(pattern))
    if not is_remote(pattern):
        import glob as local_glob  # pylint: disable=import-outside-toplevel

        return sorted(local_glob.glob(_local(pattern)))
    # epath globs below a fixed root: split the pattern at its first component with magic.
    parts = pattern.split("/")
    first = next(i for i, part in enumerate(parts) if has_glob(part))
    root = "/".join(parts[:first])
    return sorted(os.fspath(match) for match in _epath(root).glob("/".join(parts[first:])))


def expand_patterns(patterns: str | Sequence[str], *, what: str = "input") -> list[str]:
    """Files named by comma-separated (or listed) paths and glob patterns, on any scheme.

    Each pattern's matches are sorted and kept in pattern order (folders and unfinished
    `.tmp-` files of atomic_write left out); a plain path must be an existing file. Raises FileNotFoundError naming the pattern (and `what` it was for) when one
    matches no file, and ValueError when no pattern is given at all.
    """
    if isinstance(patterns, str):
        patterns = patterns.split(",")
    patterns = [p.strip() for p in patterns if p and p.strip()]
    if not patterns:
        raise ValueError(f"no {what} files given")
    files: list[str] = []
    for pattern in patterns:
        if has_glob(pattern):
            # A `.tmp-` file is an unfinished atomic_write (a killed writer): never input.
            matches = [m for m in glob(pattern) if ".tmp-" not in basename(m) and not isdir(m)]
        else:
            matches = [pattern] if isfile(pattern) else []
        if not matches:
            detail = " (it is a folder)" if not has_glob(pattern) and isdir(pattern) else ""
            raise FileNotFoundError(f"{what} file pattern {pattern!r} matches no file{detail}")
        files.extend(matches)
    return files
