"""Portable JSON files for fitted predictors.

A saved predictor is one JSON document (never a pickle), readable by any JSON parser::

    {
      "format": "hwml.predict",
      "format_version": 2,
      "model_type": "neuralpower_regressor",
      "hwml_version": "0.1.0",
      "target": "runtime_ms",
      "device": "NVIDIA H100 80GB HBM3",
      "dtype": "float32",
      "params": {...constructor arguments...},
      "state": {...fitted numbers...}
    }

``device`` and ``dtype`` describe the data the model was fitted on (``null`` when they
were unknown). ``state`` holds plain numbers and lists only; non-finite floats are
refused when writing, so the file is strict JSON. Reading a file of another
``format_version`` or of another ``model_type`` than the one asked for raises
:class:`ModelFormatError` saying what was found and what was expected.

Every estimator class registers itself here under its ``model_type`` (see
:func:`register`), which is how :func:`load` knows which class to rebuild.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ModelFormatError",
    "register",
    "registered_types",
    "to_document",
    "from_document",
    "save",
    "load",
]

#: Value of the ``format`` key of every saved predictor.
FORMAT_NAME = "hwml.predict"
#: Version of the document layout; bumped whenever a reader of the old layout would
#: misread the new one. 2: NeuralPower's inputs changed (conv2d: ``grouped`` for the group
#: count, ``tile_flops`` added; element-wise: bytes only) and its groups record the names
#: of their inputs.
FORMAT_VERSION = 2


class ModelFormatError(ValueError):
    """A saved predictor is not a document this version of hwml can read as asked."""


class Persistable(Protocol):
    """What :func:`to_document` needs from an estimator."""

    model_type: str

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...

    def _document_header(self) -> dict[str, Any]: ...

    def _get_state(self) -> dict[str, Any]: ...


T = TypeVar("T")

_REGISTRY: dict[str, type] = {}


def register(cls: type[T]) -> type[T]:
    """Class decorator: make ``cls`` loadable under its ``model_type`` attribute."""
    name = getattr(cls, "model_type", "")
    if not name:
        raise TypeError(f"{cls.__name__} has no model_type to register under")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise TypeError(f"model_type {name!r} is already registered by {_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def registered_types() -> dict[str, type]:
    """Every registered ``model_type`` and its class."""
    return dict(_REGISTRY)


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON-ready Python objects (numpy arrays and scalars converted).

    Stricter than :func:`hwml.data.json_safe`, on purpose: a model file with a missing
    coefficient is corrupt, so a non-finite number or a value of an unknown type is
    refused (with where it sits in the document), never replaced by None.
    """
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), where)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"cannot save a non-finite number ({f}) at {where}: JSON has none")
        return f
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot save a value of type {type(value).__name__} at {where}")


def to_document(model: Persistable) -> dict[str, Any]:
    """The JSON document of a fitted estimator (see the module docstring).

    Raises:
        sklearn.exceptions.NotFittedError: when the estimator is not fitted.
    """
    from hwml import __version__

    params = {k: v for k, v in model.get_params(deep=False).items() if not hasattr(v, "get_params")}
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_type": model.model_type,
        "hwml_version": __version__,
        **model._document_header(),
        "params": params,
        "state": model._get_state(),
    }
    return _plain(doc, "document")


def from_document(doc: dict[str, Any], expected: type | None = None) -> Any:
    """Rebuild an estimator from :func:`to_document` output.

    Args:
        doc: The parsed JSON document.
        expected: When given, the class the document must hold (or a subclass of).

    Raises:
        ModelFormatError: for a document of another format, another format version, an
            unknown model type or a model type other than ``expected``'s.
    """
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ModelFormatError(
            f"not an hwml predictor file: format is {found!r}, expected {FORMAT_NAME!r}"
        )
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"predictor file has format_version {version!r}; this hwml reads version "
            f"{FORMAT_VERSION} only: refit the model with this hwml version"
        )
    model_type = doc.get("model_type")
    cls = _REGISTRY.get(str(model_type))
    if cls is None:
        raise ModelFormatError(
            f"unknown model_type {model_type!r}; known: {', '.join(sorted(_REGISTRY))}"
        )
    if expected is not None and not issubclass(cls, expected):
        wanted = getattr(expected, "model_type", expected.__name__)
        raise ModelFormatError(
            f"file holds a {model_type!r} model, not a {wanted!r} model; "
            f"load it with {cls.__name__}.load or hwml.predict.load"
        )
    return cls._from_document(doc)


def save(model: Persistable, path: str | os.PathLike[str]) -> Path:
    """Write a fitted estimator to ``path`` as JSON; returns the path."""
    path = Path(path)
    text = json.dumps(to_document(model), indent=1, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load(path: str | os.PathLike[str], expected: type | None = None) -> Any:
    """Read an estimator saved by :func:`save` (any registered type unless ``expected``).

    Raises:
        FileNotFoundError: no such file.
        ModelFormatError: a folder, not JSON, another format or version, or a model whose
            fitted state is missing or damaged; the message starts with the path.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFormatError(f"{path} is a folder: give the model file (.json) hwml fit wrote")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelFormatError(f"{path}: not valid JSON ({err})") from err
    except UnicodeDecodeError as err:
        raise ModelFormatError(f"{path}: not a text file ({err})") from err
    try:
        return from_document(doc, expected)
    except ModelFormatError as err:
        raise ModelFormatError(f"{path}: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ModelFormatError(
            f"{path}: the model's fitted state is missing or damaged "
            f"({type(err).__name__}: {err}); refit it with hwml fit"
        ) from err
