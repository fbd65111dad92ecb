"""Fitted layer models saved once as JSON and reused: the chapters' fit, made at most once.

The layer chapter and the network chapter fit the same Paleo and NeuralPower models
(:func:`hwml.predict.evaluate.fit_layer_models`) on the same rows with the same
parameters, which takes minutes. :func:`fit_layer_models_cached` fits them once and
writes them, in the package's own JSON format (:mod:`hwml.predict.io`, never a pickle),
to one file in a cache folder; a later call with the same inputs reads them back.

The file is named by :func:`cache_key`, a SHA-256 of everything that decides the fit:

* the training rows (their CSV text, index and every column included);
* the dataset's provenance (Paleo's measured peaks, the device name);
* the fit's parameters (dtype, degrees, folds, seed, Paleo's peak, kind groups, device)
  and whatever the caller adds (``key_extra``);
* hwml's version, the model-file format version and a digest of hwml's source files, so
  that a changed fit code never reads models fitted by the old one;
* the versions of numpy, scipy, scikit-learn and pandas, which compute the fit.

A stale file therefore can never be read: any change gives another name. A file that
cannot be read (cut short, edited, of another format) is refitted and replaced, with a
warning. Files are written to a temporary name in the same folder and renamed, so a
reader never sees half a file and two writers never mix theirs.

The saved file also records how long the fit took when it was made (``fit_s``), which a
chapter reports as the cost of fitting, not the cost of loading.

:func:`fit_pipeline_cached` does the same for the host + device pipeline model of whole
networks (:mod:`hwml.predict.pipeline`), whose cost is describing every measured network.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from hwml.predict import io
from hwml.predict.base import LayerEstimator
from hwml.predict.evaluate import SAMPLED_KIND_GROUPS, fit_layer_models
from hwml.predict.neuralpower import NeuralPower
from hwml.predict.paleo import Paleo

__all__ = [
    "CACHE_FORMAT",
    "CACHE_FORMAT_VERSION",
    "PIPELINE_CACHE_FORMAT",
    "LayerModelFit",
    "PipelineFit",
    "cache_key",
    "fit_layer_models_cached",
    "fit_pipeline_cached",
]

#: Value of the ``format`` key of a cache file.
CACHE_FORMAT = "hwml.layer_models"
#: Version of the cache file's layout (part of the key: a new layout never reads an old file).
CACHE_FORMAT_VERSION = 1

#: Model name -> class, in the order :func:`fit_layer_models` returns them.
_MODELS: dict[str, type] = {"Paleo": Paleo, "NeuralPower": NeuralPower}

#: Libraries whose versions enter the key: they compute the fit.
_LIBRARIES = ("numpy", "scipy", "scikit-learn", "pandas")


class LayerModelFit(NamedTuple):
    """Fitted layer models and how they were obtained.

    Attributes:
        models: ``{"Paleo": ..., "NeuralPower": ...}``, as :func:`fit_layer_models` returns.
        fit_s: Seconds the fit took when it was made (not the time to load it).
        loaded: True when the models were read from the cache.
        path: The cache file; None when caching is off.
    """

    models: dict[str, LayerEstimator]
    fit_s: float
    loaded: bool
    path: Path | None


def _source_digest() -> str:
    """SHA-256 of hwml's Python source files (their paths and bytes, in path order)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _table_digest(table: pd.DataFrame) -> str:
    """SHA-256 of the table's CSV text (index and every column; floats written exactly)."""
    return hashlib.sha256(table.to_csv(index=True).encode("utf-8")).hexdigest()


def _key_inputs(
    train: pd.DataFrame,
    provenance: Mapping[str, Any],
    params: Mapping[str, Any],
    key_extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Everything the key is a hash of (digests stand for the training rows and provenance)."""
    from hwml import __version__

    prov = json.dumps(provenance, sort_keys=True, default=str).encode("utf-8")
    return {
        "cache_format_version": CACHE_FORMAT_VERSION,
        "model_format_version": io.FORMAT_VERSION,
        "hwml_version": __version__,
        "hwml_source_sha256": _source_digest(),
        "libraries": _library_versions(),
        "train_sha256": _table_digest(train),
        "train_rows": len(train),
        "provenance_sha256": hashlib.sha256(prov).hexdigest(),
        "params": dict(params),
        "extra": dict(key_extra or {}),
    }


def _fit_params(
    dtype: str,
    degrees: Sequence[int],
    cv: int,
    seed: int,
    paleo_peak: str | None,
    kind_groups: Mapping[str, str] | None,
    device: str | None,
) -> dict[str, Any]:
    """The keyword arguments of :func:`fit_layer_models`, as plain JSON values."""
    return {
        "dtype": str(dtype),
        "degrees": [int(d) for d in degrees],
        "cv": int(cv),
        "seed": int(seed),
        "paleo_peak": paleo_peak,
        "kind_groups": dict(SAMPLED_KIND_GROUPS if kind_groups is None else kind_groups),
        "device": device,
    }


def _digest(inputs: Mapping[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, default=str, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(
    train: pd.DataFrame,
    provenance: Mapping[str, Any],
    *,
    dtype: str = "float32",
    degrees: Sequence[int] = (1, 2, 3),
    cv: int = 10,
    seed: int = 0,
    paleo_peak: str | None = None,
    kind_groups: Mapping[str, str] | None = None,
    device: str | None = None,
    key_extra: Mapping[str, Any] | None = None,
) -> str:
    """The hex SHA-256 naming the cached fit of these inputs (see the module docstring).

    Arguments are those of :func:`fit_layer_models`, plus ``key_extra``: any further
    JSON-able facts the caller wants the key to cover.
    """
    params = _fit_params(dtype, degrees, cv, seed, paleo_peak, kind_groups, device)
    return _digest(_key_inputs(train, provenance, params, key_extra))


def _read(path: Path, key: str) -> tuple[dict[str, LayerEstimator], float]:
    """The models and fit seconds of a cache file; raises if it is not the file of ``key``."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
        raise io.ModelFormatError(f"{path}: not an hwml layer-model cache file")
    if doc.get("key") != key:
        raise io.ModelFormatError(f"{path}: holds the fit of key {doc.get('key')!r}, not {key!r}")
    models = {name: io.from_document(doc["models"][name], cls) for name, cls in _MODELS.items()}
    return models, float(doc["fit_s"])


def _write(path: Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as JSON to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is as readable as the book
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fit_layer_models_cached(
    train: pd.DataFrame,
    provenance: Mapping[str, Any],
    *,
    cache_dir: str | os.PathLike[str] | None,
    dtype: str = "float32",
    degrees: Sequence[int] = (1, 2, 3),
    cv: int = 10,
    seed: int = 0,
    paleo_peak: str | None = None,
    kind_groups: Mapping[str, str] | None = None,
    device: str | None = None,
    key_extra: Mapping[str, Any] | None = None,
) -> LayerModelFit:
    """:func:`fit_layer_models`, read from ``cache_dir`` when these inputs were fitted before.

    A hit reads ``<cache_dir>/layer-models-<key>.json`` (:func:`cache_key`); a miss fits,
    times the fit and writes that file. The models read back predict exactly what the
    fitted ones did (the JSON holds every float exactly).

    Args:
        train: Measured layer rows of one dtype.
        provenance: The dataset's provenance.
        cache_dir: Folder of the cache files (created when missing); None or ``""``: no
            cache, fit every time.
        dtype, degrees, cv, seed, paleo_peak, kind_groups, device: As for
            :func:`fit_layer_models`.
        key_extra: Further JSON-able facts the key covers (e.g. the dataset's name).

    Returns:
        :class:`LayerModelFit`: the models, the seconds the fit took when it was made,
        whether they were read from the cache, and the cache file.
    """
    params = _fit_params(dtype, degrees, cv, seed, paleo_peak, kind_groups, device)
    path: Path | None = None
    inputs: dict[str, Any] = {}
    key = ""
    if cache_dir is not None and str(cache_dir) != "":
        inputs = _key_inputs(train, provenance, params, key_extra)
        key = _digest(inputs)
        path = Path(cache_dir) / f"layer-models-{key}.json"
        if path.exists():
            try:
                models, fit_s = _read(path, key)
                return LayerModelFit(models, fit_s, True, path)
            except (OSError, ValueError, KeyError, TypeError) as err:
                warnings.warn(
                    f"refitting: cannot use the cached layer models ({err})", stacklevel=2
                )
    t0 = time.perf_counter()
    models = fit_layer_models(train, provenance, **params)
    fit_s = time.perf_counter() - t0
    if path is not None:
        doc = {
            "format": CACHE_FORMAT,
            "format_version": CACHE_FORMAT_VERSION,
            "key": key,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "fit_s": fit_s,
            "inputs": inputs,
            "models": {name: io.to_document(models[name]) for name in _MODELS},
        }
        _write(path, doc)
    return LayerModelFit(models, fit_s, False, path)


class PipelineFit(NamedTuple):
    """A fitted pipeline model and how it was obtained.

    Attributes:
        model: the :class:`~hwml.predict.pipeline.PipelineModel`, with its held-out errors
            (``held_out_error_pct``, leave one network out).
        fit_s: seconds the features, fit and held-out evaluation took when made.
        loaded: True when read from the cache.
        path: the cache file; None when caching is off.
        networks: measured networks it was fitted on.
    """

    model: Any
    fit_s: float
    loaded: bool
    path: Path | None
    networks: int


#: Value of the ``format`` key of a pipeline-model cache file.
PIPELINE_CACHE_FORMAT = "hwml.pipeline_cache"


def fit_pipeline_cached(
    nets: pd.DataFrame,
    provenance: Mapping[str, Any],
    *,
    cache_dir: str | os.PathLike[str] | None,
    device: str = "",
    key_extra: Mapping[str, Any] | None = None,
) -> PipelineFit:
    """The pipeline model of :mod:`hwml.predict.pipeline` fitted on measured networks,
    read from ``cache_dir`` when these inputs were fitted before.

    Describing every measured network for its features takes a minute or two; the model
    itself fits in milliseconds. The key covers the network rows, the provenance, hwml's
    source and the libraries (as :func:`cache_key` does for the layer models), so a stale
    file is never read.

    Args:
        nets: measured network rows (``nets.csv``, e.g. ``measurements.load(...).network_set``).
        provenance: the dataset's provenance (measured ceilings, idle power).
        cache_dir: folder of the cache files; None or ``""``: fit every time.
        device: the GPU's name, recorded in the model.
        key_extra: further JSON-able facts the key covers.

    Returns:
        :class:`PipelineFit`.
    """
    from hwml.predict import pipeline as P

    path: Path | None = None
    key = ""
    if cache_dir is not None and str(cache_dir) != "":
        inputs = _key_inputs(nets, provenance, {"model": "pipeline", "device": device}, key_extra)
        key = _digest(inputs)
        path = Path(cache_dir) / f"pipeline-{key}.json"
        if path.exists():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                if doc.get("format") != PIPELINE_CACHE_FORMAT or doc.get("key") != key:
                    raise ValueError(f"{path}: not the pipeline cache file of this key")
                model = P.PipelineModel.load_dict(doc["model"])
                return PipelineFit(model, float(doc["fit_s"]), True, path, int(doc["networks"]))
            except (OSError, ValueError, KeyError, TypeError) as err:
                warnings.warn(
                    f"refitting: cannot use the cached pipeline model ({err})", stacklevel=2
                )
    t0 = time.perf_counter()
    table = P.measured_features(nets, provenance, progress=False)
    idle = P.idle_power(provenance)
    dtypes = sorted(table["dtype"].unique())
    model = P.PipelineModel().fit(
        table, idle_w=idle, ceilings=P.ceilings_of(provenance, dtypes), device=device
    )
    model.held_out_error_pct = P.held_out_errors(P.leave_out(table, "network", idle_w=idle))
    fit_s = time.perf_counter() - t0
    n_networks = int(table["network"].nunique())
    if path is not None:
        _write(
            path,
            {
                "format": PIPELINE_CACHE_FORMAT,
                "key": key,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "fit_s": fit_s,
                "networks": n_networks,
                "model": json.loads(json.dumps(model.to_dict(), allow_nan=False, default=float)),
            },
        )
    return PipelineFit(model, fit_s, False, path, n_networks)
