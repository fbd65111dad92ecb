"""Platform-aware neural architecture search (survey section 4.4: MnasNet, DPP-Net).

* :mod:`~hwml.nas.space` — a MnasNet-like cell space (per stage: block type, expansion,
  kernel, squeeze-and-excitation, depth, width) whose networks are
  :class:`hwml.cells.CellNet` s that :func:`hwml.describe.describe` handles;
* :mod:`~hwml.nas.references` — MobileNetV2, MnasNet and EfficientNet-B0 rebuilt for the
  proxy task's small images;
* :mod:`~hwml.nas.pricing` — FLOPs and the network model's predicted latency and energy of
  many candidates per second, without building them;
* :mod:`~hwml.nas.benchmark` and :mod:`~hwml.nas.table` — the tabular benchmark: a pool
  of architectures trained on the proxy task and measured on a GPU, built resumably, and
  read back;
* :mod:`~hwml.nas.search` — searches that differ only in their hardware term (none,
  FLOPs, predicted, measured) with aging evolution on MnasNet's reward or NSGA-II, and
  their verdict in measured error and cost.

The submodules are imported on their own (``from hwml.nas.search import ...``): the GPU
side (:mod:`~hwml.nas.benchmark`) needs none of the search code's dependencies.
"""
