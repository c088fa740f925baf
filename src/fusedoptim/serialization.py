"""Save and load state dicts as ``.npz``-compatible zip files with JSON metadata, never pickle.

A file written by :func:`save` is a zip archive holding one ``.npy`` member per array (so
``numpy.load`` can open it and read the arrays by name) and a ``metadata.json`` member that
records the structure: dicts, lists, tuples, strings, numbers, booleans, ``None`` and, in place
of each array, the name of its member. Nothing is pickled, so loading a file cannot run code.

The write is atomic: the archive is written to a temporary file in the destination directory,
flushed to disk, then renamed over the destination, so a crash mid-write leaves any previous file
intact.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
import zipfile
from typing import Any, Union

import numpy as np

__all__ = ["load", "save"]

PathT = Union[str, "os.PathLike[str]"]

_FORMAT = "fusedoptim.state_dict"
_VERSION = 1
_METADATA = "metadata.json"
# Tags for what JSON cannot say directly. A dict whose keys are all strings that do not start
# with "__" is stored as a JSON object; any other dict as a tagged list of pairs.
_ARRAY, _TUPLE, _DICT, _SCALAR, _FLOAT = (
    "__array__",
    "__tuple__",
    "__dict__",
    "__scalar__",
    "__float__",
)


def _member_name(path: list[str], used: set[str]) -> str:
    """A readable, unique member name from the array's position: ``state.0.exp_avg.npy``."""
    stem = ".".join(path) or "array"
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:120]
    name, counter = f"{stem}.npy", 1
    while name in used or name == _METADATA:
        name, counter = f"{stem}.{counter}.npy", counter + 1
    used.add(name)
    return name


def _encode(value: Any, path: list[str], arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(
                f"cannot save the object array at {'.'.join(path)}: saving never pickles"
            )
        name = _member_name(path, set(arrays))
        arrays[name] = value
        return {_ARRAY: name}
    if isinstance(value, np.generic):
        if not isinstance(value, (np.bool_, np.integer, np.floating)):
            raise TypeError(f"cannot save the NumPy scalar {value!r} at {'.'.join(path)}")
        item = value.item()
        if isinstance(item, np.generic):  # longdouble: no Python number holds it; a 0-d array
            return {_SCALAR: [value.dtype.str, _encode(np.asarray(value), path, arrays)]}
        return {_SCALAR: [value.dtype.str, _encode(item, path, arrays)]}
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        # JSON has no NaN or infinity; spell them out so the file stays standard JSON.
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(item, [*path, str(i)], arrays) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(item, [*path, str(i)], arrays) for i, item in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("__") for key in value):
            return {key: _encode(item, [*path, key], arrays) for key, item in value.items()}
        return {
            _DICT: [
                [_encode(key, path, arrays), _encode(item, [*path, str(key)], arrays)]
                for key, item in value.items()
            ]
        }
    raise TypeError(
        f"cannot save {type(value).__name__} at {'.'.join(path) or 'the top level'}: only dicts, "
        "lists, tuples, str, int, float, bool, None and numpy arrays are saved (never pickled)"
    )


def _decode(value: Any, archive: zipfile.ZipFile) -> Any:
    if isinstance(value, list):
        return [_decode(item, archive) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, content),) = value.items()
        if tag == _ARRAY:
            if not isinstance(content, str) or content == _METADATA:
                raise ValueError(f"bad array reference {content!r} in {_METADATA}")
            try:
                member = archive.open(content)
            except KeyError:
                raise ValueError(f"the file lacks the array member {content!r}") from None
            with member:
                return np.lib.format.read_array(member, allow_pickle=False)
        if tag == _TUPLE:
            return tuple(_decode(item, archive) for item in content)
        if tag == _DICT:
            return {_hashable(_decode(k, archive)): _decode(v, archive) for k, v in content}
        if tag == _SCALAR:
            dtype, item = content
            return np.dtype(dtype).type(_decode(item, archive))
        if tag == _FLOAT:
            return float(content)
    return {key: _decode(item, archive) for key, item in value.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(item) for item in key) if isinstance(key, list) else key


def save(state_dict: Any, path: PathT) -> None:
    """Write ``state_dict`` (e.g. ``opt.state_dict()``) to ``path``, atomically.

    Arrays become ``.npy`` members of a zip archive (readable with ``numpy.load``); the rest
    of the structure goes to a ``metadata.json`` member. The file is first written to a
    temporary file beside ``path``, synced to disk and renamed over ``path``, so an existing file
    is either fully replaced or left untouched.

    Args:
        state_dict: nested dicts (any hashable JSON-able keys, e.g. ints), lists, tuples, str,
            int, float, bool, None, NumPy scalars and arrays (not object arrays).
        path: destination file name; ``.npz`` is a natural suffix, none is added.

    Raises:
        TypeError: something in ``state_dict`` cannot be saved without pickling.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> import fusedoptim
        >>> opt = fusedoptim.Adam([np.zeros(3)], lr=0.01)
        >>> opt.step([np.ones(3)])
        >>> path = os.path.join(tempfile.mkdtemp(), "optimizer.npz")
        >>> fusedoptim.save(opt.state_dict(), path)
        >>> restored = fusedoptim.load(path)
        >>> restored["param_groups"][0]["betas"], int(restored["state"][0]["step"])
        ((0.9, 0.999), 1)
    """
    arrays: dict[str, np.ndarray] = {}
    metadata = {"format": _FORMAT, "version": _VERSION, "data": _encode(state_dict, [], arrays)}
    text = json.dumps(metadata, allow_nan=False, indent=1)

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
                for name, array in arrays.items():
                    with archive.open(name, "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
                archive.writestr(_METADATA, text)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp creates the file readable by its owner only; give the checkpoint the mode
        # of the file it replaces, or the usual 0o644.
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o644
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _sync_directory(directory)


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable where the platform allows it (POSIX)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def load(path: PathT) -> Any:
    """Read a state dict written by :func:`save` (arrays are read with ``allow_pickle=False``).

    Args:
        path: a file written by :func:`save`.

    Returns:
        The saved structure: dicts (with their original key types), lists, tuples and arrays.

    Raises:
        ValueError: the file is not a fusedoptim state-dict archive, or it is damaged.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> import fusedoptim
        >>> path = os.path.join(tempfile.mkdtemp(), "state.npz")
        >>> fusedoptim.save({"state": {0: {"sum": np.ones(2)}}, "param_groups": []}, path)
        >>> fusedoptim.load(path)["state"][0]["sum"]
        array([1., 1.])
    """
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path} is not a file written by fusedoptim.save: {error}") from None
    with archive:
        try:
            metadata = json.loads(archive.read(_METADATA))
        except KeyError:
            raise ValueError(f"{path} has no {_METADATA}: not written by fusedoptim.save") from None
        except (zipfile.BadZipFile, EOFError, UnicodeDecodeError) as error:  # a damaged member
            raise ValueError(f"{path} is damaged: {type(error).__name__}: {error}") from None
        if not isinstance(metadata, dict) or metadata.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a fusedoptim state-dict file")
        if metadata.get("version") != _VERSION:
            raise ValueError(
                f"{path} has format version {metadata.get('version')!r}; this fusedoptim reads "
                f"version {_VERSION}"
            )
        try:
            return _decode(metadata["data"], archive)
        except ValueError:
            raise
        except (zipfile.BadZipFile, KeyError, TypeError, IndexError, EOFError) as error:
            raise ValueError(f"{path} is damaged: {type(error).__name__}: {error}") from None
