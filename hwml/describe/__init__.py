"""Layer and network descriptions: the one language every part of hwml speaks.

A :class:`Layer` is a device-free description of one operation of a network: its kind,
its hyper-parameters (batch, channels, spatial sizes, kernel, stride, padding, groups,
features) and the features derived from them (MACs, FLOPs, element-wise operations,
parameter and activation bytes, arithmetic intensity). A :class:`Network` is the list of
layers of a module in execution order together with the graph edges between them, so
residual additions and concatenations stay visible.

Descriptions are produced in two ways:

* :func:`describe` traces any ``torch.nn.Module`` with ``torch.fx`` and propagates shapes
  on the ``meta`` device (nothing is computed, so VGG-16 at batch 256 costs nothing);
* the constructors :meth:`Layer.conv2d`, :meth:`Layer.linear`, :meth:`Layer.pool2d`, ...
  build a layer straight from hyper-parameters (what the profiler's sweeps need), and
  :meth:`Layer.to_module` turns any description back into a runnable module.

FLOP convention: ``flops = 2 * macs`` and only convolutions and matrix products
(``conv2d``, ``linear``, ``matmul``, and the projections and products of ``attention``)
have MACs, exactly what ``torch.utils.flop_counter.FlopCounterMode`` counts on meta
tensors: summed over a network they equal its count for every torchvision classifier.
The arithmetic of every other kind (pool comparisons, batch-norm scale and shift,
normalizations, softmax, reductions, activations, bias and element-wise adds) is counted
separately in ``vector_ops``; data movement (kind ``flatten``, the operation in ``op``)
has none.

Units: bytes for every ``*_bytes`` field; counts for ``macs``, ``flops``, ``vector_ops``,
``params``; ``arith_intensity`` is (flops + vector_ops) per byte moved.

Modules: :mod:`~hwml.describe.layer` (one layer, its features and constructors),
:mod:`~hwml.describe.network` (tracing a module into a network) and
:mod:`~hwml.describe.rules` (how each traced node becomes a layer).
"""

from hwml.describe.layer import ACTIVATIONS, KINDS, Layer, UnsupportedLayerError
from hwml.describe.network import Network, describe

__all__ = [
    "KINDS",
    "ACTIVATIONS",
    "Layer",
    "Network",
    "UnsupportedLayerError",
    "describe",
]
