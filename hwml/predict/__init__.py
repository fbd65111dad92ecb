"""Predict what a network costs on hardware, before running it (survey section 3).

Models, all estimators in the scikit-learn style (``fit(table)`` / ``predict(table)`` on
pandas DataFrames of layer descriptions, ``get_params``), saved as portable JSON:

* :class:`Paleo` (:mod:`~hwml.predict.paleo`): analytical layer runtime, compute plus
  transfer time at a fitted platform percent of peak.
* :class:`NeuralPowerRegressor` / :class:`NeuralPower` (:mod:`~hwml.predict.neuralpower`):
  sparse polynomial layer models of runtime and power, energy = power x runtime,
  network = sum of layers.
* :class:`NetworkCalibration` (:mod:`~hwml.predict.calibration`): corrects the summed
  layer predictions of any layer model with whole-network measurements.
* :class:`LinearHardwareModel` (:mod:`~hwml.predict.hyperpower`): HyperPower's linear
  power and memory models of a network's structural hyper-parameters, the constraint
  models of the hardware-aware Bayesian optimizer.
* :class:`Eyeriss` (:mod:`~hwml.predict.eyeriss`): analytical accelerator energy,
  computation plus data movement through the memory hierarchy.
* :class:`ScratchTransfer`, :class:`RescaleTransfer`, :class:`MetaTransfer`,
  :class:`RooflineTransfer` (:mod:`~hwml.predict.transfer`): layer runtime on a new
  device from one or several measured source devices and ``k`` (0..N) measured target
  layers, with :func:`~hwml.predict.transfer.choose_rows`,
  :func:`~hwml.predict.transfer.transfer_pairs` (source -> target pairs among platforms)
  and :func:`~hwml.predict.transfer.transfer_curve` /
  :func:`~hwml.predict.transfer.network_curve` (layer and network error versus ``k``).
* :mod:`~hwml.predict.metrics`: RMSPE, RMSE, MAPE, Spearman rho, fraction within +-10%.
* :mod:`~hwml.predict.evaluate`: held-out splits, the noise floor of repeated
  measurements, the survey's Tables 1 and 2 beside ours, network predictions of any
  model in one form, prediction timing (what the modeling chapters and ``hwml predict``
  use).
* :mod:`~hwml.predict.model_cache`: those chapters' Paleo and NeuralPower fit, saved once
  as JSON under a hash of its data, parameters and code, and read back by later runs.

Typical use::

    import pandas as pd
    from hwml import zoo
    from hwml.predict import NeuralPower, load

    layers = pd.read_csv("data/h100/layers.csv")
    model = NeuralPower().fit(layers[layers.dtype == "float32"], device="NVIDIA H100")
    model.save("neuralpower_h100_fp32.json")
    model = load("neuralpower_h100_fp32.json")
    pred = model.predict_network(zoo.describe_net("vgg16", 64, weights=False))
    pred.totals["runtime_ms"], pred.layers.head()

Tables: layer tables carry the columns of :meth:`hwml.describe.Layer.to_row` plus the
measured columns (``runtime_ms``, ``power_w``, ``energy_mj``, ``status``, ``dtype``, ...);
see :mod:`hwml.predict.base` for the shared conventions (usable rows, groups of layer
kinds, device checks, errors, and what a network prediction does with layers a model
cannot price: leaves them out and says so, or with ``strict=True`` raises).
"""

from __future__ import annotations

from hwml.predict import metrics
from hwml.predict.base import (
    KIND_GROUPS,
    DeviceMismatchError,
    DeviceMismatchWarning,
    Estimator,
    LayerEstimator,
    LeftOutLayersWarning,
    MissingColumnsError,
    NetworkPrediction,
    NotFittedError,
    PredictorError,
    TooFewRowsError,
    UnknownKindError,
    usable_rows,
)
from hwml.predict.calibration import NetworkCalibration
from hwml.predict.eyeriss import Eyeriss
from hwml.predict.hyperpower import LinearHardwareModel, memory_model, power_model
from hwml.predict.io import FORMAT_VERSION, ModelFormatError
from hwml.predict.io import load as _load
from hwml.predict.neuralpower import NeuralPower, NeuralPowerRegressor
from hwml.predict.paleo import Paleo
from hwml.predict.transfer import (
    MetaTransfer,
    RescaleTransfer,
    RooflineTransfer,
    ScratchTransfer,
    TransferEstimator,
)

__all__ = [
    "KIND_GROUPS",
    "FORMAT_VERSION",
    "Estimator",
    "LayerEstimator",
    "NetworkPrediction",
    "Paleo",
    "NeuralPowerRegressor",
    "NeuralPower",
    "NetworkCalibration",
    "LinearHardwareModel",
    "power_model",
    "memory_model",
    "Eyeriss",
    "TransferEstimator",
    "ScratchTransfer",
    "RescaleTransfer",
    "MetaTransfer",
    "RooflineTransfer",
    "metrics",
    "load",
    "usable_rows",
    "PredictorError",
    "MissingColumnsError",
    "TooFewRowsError",
    "UnknownKindError",
    "LeftOutLayersWarning",
    "DeviceMismatchError",
    "DeviceMismatchWarning",
    "ModelFormatError",
    "NotFittedError",
]


def load(path: str) -> Estimator:
    """Load any saved hwml predictor (its class is read from the file).

    Raises:
        ModelFormatError: for a file of another format version or an unknown model type.
    """
    return _load(path)
