"""Deployment levels of a trained model on a GPU (survey 4.2 Minerva, 5.2.2 co-search).

Once a network is trained, its user still controls several levels of how it runs; each
is a transformation of the trained model here, whose accuracy (:func:`evaluate_accuracy`)
and measured cost (:func:`measure_deployment`: runtime, power, energy per inference) can
be evaluated, so a script can apply them stage by stage as Minerva does, keeping each
stage only while the test error stays within the training-noise band of the baseline.

Levels, from the network outward:

1. **Network size** — :func:`prune_channels` removes whole filters and dense units
   (lowest L1 norm) and returns a smaller :class:`~hwml.tasks.cnn.CNN` with its
   :func:`~hwml.tasks.cnn.build_cnn` configuration: fewer FLOPs on any hardware.
2. **Sparsity** — :func:`prune_unstructured` (magnitude, to a target fraction) and
   :func:`prune_2to4` (two of every four weights, the pattern sparse tensor cores run;
   :func:`to_semi_structured` stores it sparsely where the GPU supports it). Both accept
   a fine-tuning callback (:func:`fine_tuner`).
3. **Numeric precision** — :func:`apply_precision` for ``fp32``, ``tf32``, ``bf16``,
   ``fp16``, and ``int8``/``fp8`` only where PyTorch runs them for real on the device;
   :func:`supported_precisions` says which run natively, emulated, or not at all.
4. **Batch size** — a parameter of measurement: :func:`rebatch`,
   ``measure_deployment(batch=...)``.
5. **Execution mode** — :func:`prepare_execution`: ``eager``, ``cuda-graph`` (capture and
   replay), ``compile`` (``torch.compile``).

Every transformation returns ``(model_or_callable, info)``, the info dict saying what
actually ran (dtypes, kernels, layers converted or left dense, fallbacks); none modifies
the model it is given, except that :func:`prepare_execution` puts it in eval mode.
:func:`count_parameters` counts parameters, nonzeros and stored bytes.
"""

from hwml.deploy.evaluate import count_parameters, evaluate_accuracy, measure_deployment
from hwml.deploy.execution import (
    EXECUTION_MODES,
    ExecutionModeError,
    prepare_execution,
    rebatch,
)
from hwml.deploy.precision import (
    PRECISIONS,
    Fp8Linear,
    PrecisionModel,
    UnsupportedPrecisionError,
    apply_precision,
    precision_context,
    supported_precisions,
)
from hwml.deploy.pruning import (
    SEMI_STRUCTURED,
    FineTune,
    fine_tuner,
    is_2to4,
    mask_2to4,
    prune_2to4,
    prune_channels,
    prune_unstructured,
    semi_structured_backend,
    sparsity,
    to_semi_structured,
)

__all__ = [
    "EXECUTION_MODES",
    "PRECISIONS",
    "SEMI_STRUCTURED",
    "ExecutionModeError",
    "FineTune",
    "Fp8Linear",
    "PrecisionModel",
    "UnsupportedPrecisionError",
    "apply_precision",
    "count_parameters",
    "evaluate_accuracy",
    "fine_tuner",
    "is_2to4",
    "mask_2to4",
    "measure_deployment",
    "precision_context",
    "prepare_execution",
    "prune_2to4",
    "prune_channels",
    "prune_unstructured",
    "rebatch",
    "semi_structured_backend",
    "sparsity",
    "supported_precisions",
    "to_semi_structured",
]
