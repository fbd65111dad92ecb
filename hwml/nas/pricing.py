"""Pricing candidate architectures fast: FLOPs and the predicted runtime and energy.

A platform-aware search asks the cost model about many candidates. Tracing each one
with :func:`hwml.describe.describe` costs tens of milliseconds a network; this module
prices an architecture of a :class:`~hwml.nas.space.NASSpace` without building it:

* :func:`arch_layers` lists the architecture's layers with the description layer's own
  constructors (:class:`hwml.describe.Layer`), exactly the layers ``describe`` finds in
  the built module (a test checks kinds, shapes, FLOPs and bytes network by network);
* :class:`ArchPricer` adds the additive features of the host + device pipeline model
  (:func:`hwml.predict.pipeline.feature_sums`) stage by stage, each stage computed once
  per (choice, input channels, input size, batch) and kept, so that pricing a new
  candidate is a few look-ups and a sum; the pipeline model
  (:class:`hwml.predict.pipeline.PipelineModel`, fitted on measured networks of a GPU)
  then turns a whole batch of feature rows into predicted eager runtime, GPU energy and
  power with a few vector operations (:meth:`ArchPricer.predict`);
* :func:`pricing_rate` measures how many candidates per second that path prices.

Units: milliseconds (``*_ms``), millijoules (``*_mj``), watts (``*_w``); FLOPs in the
``FlopCounterMode`` convention (2 x MACs).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hwml.describe import Layer, Network
from hwml.nas.space import Arch, NASSpace, StageChoice
from hwml.predict.pipeline import (
    FEATURE_COLUMNS,
    SUM_COLUMNS,
    PipelineModel,
    feature_sums,
)

__all__ = ["ArchPricer", "arch_layers", "arch_network", "pricing_rate"]


# ====================================================================== layers


def _conv(
    batch: int, cin: int, h: int, cout: int, k: int, stride: int, groups: int, bias: bool
) -> Layer:
    return Layer.conv2d(batch, cin, h, h, cout, k, stride, k // 2, groups=groups, bias=bias)


def _conv_bn_act(
    out: list[Layer],
    batch: int,
    cin: int,
    h: int,
    cout: int,
    k: int,
    stride: int,
    act: str,
    groups: int = 1,
) -> int:
    conv = _conv(batch, cin, h, cout, k, stride, groups, False)
    oh = conv.out_h
    out += [conv, Layer.batchnorm2d(batch, cout, oh, oh), Layer.activation(act, conv.out_shape)]
    return oh


def _squeeze_excite(out: list[Layer], batch: int, c: int, h: int, act: str) -> None:
    hidden = max(8, c // 4)
    shape = (batch, c, h, h)
    pooled = (batch, c, 1, 1)
    out.append(
        Layer(
            kind="avgpool2d",
            in_shapes=(shape,),
            out_shape=pooled,
            in_channels=c,
            out_channels=c,
            kernel_h=h,
            kernel_w=h,
            stride_h=h,
            stride_w=h,
            op="adaptive",
        )
    )
    reduce = _conv(batch, c, 1, hidden, 1, 1, 1, True)
    expand = _conv(batch, hidden, 1, c, 1, 1, 1, True)
    out += [
        reduce,
        Layer.activation(act, reduce.out_shape),
        expand,
        Layer.activation("sigmoid", expand.out_shape),
        Layer(
            kind="mul", in_shapes=(shape, pooled), out_shape=shape, in_channels=c, out_channels=c
        ),
    ]


def _block(
    out: list[Layer], st: StageChoice, batch: int, cin: int, h: int, stride: int, act: str
) -> int:
    """Append one block's layers (as :mod:`hwml.cells` builds it); returns the output side."""
    cout, k = st.width, st.kernel
    if st.block == "conv":
        return _conv_bn_act(out, batch, cin, h, cout, k, stride, act)
    if st.block == "residual":
        oh = _conv_bn_act(out, batch, cin, h, cout, k, stride, act)
        out += [
            _conv(batch, cout, oh, cout, k, 1, 1, False),
            Layer.batchnorm2d(batch, cout, oh, oh),
        ]
        shape = (batch, cout, oh, oh)
        if stride != 1 or cin != cout:
            out += [
                _conv(batch, cin, h, cout, 1, stride, 1, False),
                Layer.batchnorm2d(batch, cout, oh, oh),
            ]
        else:  # nn.Identity, which describe lists as a layer of kind dropout
            out.append(Layer(kind="dropout", in_shapes=(shape,), out_shape=shape))
        out += [Layer.elementwise("add", shape), Layer.activation(act, shape)]
        return oh
    hidden = cin * st.expansion
    if st.expansion != 1:
        _conv_bn_act(out, batch, cin, h, hidden, 1, 1, act)
    oh = _conv_bn_act(out, batch, hidden, h, hidden, k, stride, act, groups=hidden)
    if st.se:
        _squeeze_excite(out, batch, hidden, oh, act)
    out += [_conv(batch, hidden, oh, cout, 1, 1, 1, False), Layer.batchnorm2d(batch, cout, oh, oh)]
    if stride == 1 and cin == cout:
        out.append(Layer.elementwise("add", (batch, cout, oh, oh)))
    return oh


def _stage_layers(
    space: NASSpace, st: StageChoice, stride: int, batch: int, cin: int, h: int
) -> tuple[list[Layer], int]:
    out: list[Layer] = []
    for j in range(st.depth):
        h = _block(
            out,
            st,
            batch,
            cin if j == 0 else st.width,
            h,
            stride if j == 0 else 1,
            space.activation,
        )
    return out, h


def _stem_layers(space: NASSpace, batch: int) -> tuple[list[Layer], int]:
    out: list[Layer] = []
    h = _conv_bn_act(
        out,
        batch,
        space.in_channels,
        space.image_size,
        space.stem,
        3,
        space.stem_stride,
        space.activation,
    )
    return out, h


def _head_layers(space: NASSpace, batch: int, c: int, h: int) -> list[Layer]:
    pooled = (batch, c, 1, 1)
    return [
        Layer(
            kind="avgpool2d",
            in_shapes=((batch, c, h, h),),
            out_shape=pooled,
            in_channels=c,
            out_channels=c,
            kernel_h=h,
            kernel_w=h,
            stride_h=h,
            stride_w=h,
            op="adaptive",
        ),
        Layer(kind="flatten", in_shapes=(pooled,), out_shape=(batch, c)),
        Layer.linear(batch, c, space.num_classes),
    ]


def arch_layers(space: NASSpace, arch: Arch, batch: int = 1) -> list[Layer]:
    """The layers of an architecture at ``batch``, without building it.

    The same layers (kinds, shapes, FLOPs, bytes) that :func:`hwml.describe.describe`
    finds in ``space.build(arch)``, in execution order, without names or edges.
    """
    arch = space.canonical(arch)
    layers, h = _stem_layers(space, batch)
    c = space.stem
    for st, stride in zip(arch, space.strides, strict=True):
        stage, h = _stage_layers(space, st, stride, batch, c, h)
        layers += stage
        c = st.width
    return layers + _head_layers(space, batch, c, h)


def arch_network(space: NASSpace, arch: Arch, batch: int = 1) -> Network:
    """:func:`arch_layers` as a :class:`~hwml.describe.Network` (no graph module)."""
    return Network(space.key(arch), space.input_shape(batch), arch_layers(space, arch, batch))


# ====================================================================== pricing


class ArchPricer:
    """Prices architectures of a space: FLOPs, features and the pipeline model's predictions.

    Stage sums are kept in a dictionary keyed by (stage, choice, input channels, input
    side, batch): the first candidate that uses a stage pays for its layers, later ones
    look it up. :meth:`warm` fills the whole dictionary in advance.

    Args:
        space: the search space.
        model: a fitted pipeline model (needed for :meth:`features` and :meth:`predict`;
            FLOPs need none).
        dtype: the dtype to price (one the model was fitted on).
    """

    def __init__(
        self, space: NASSpace, model: PipelineModel | None = None, dtype: str = "float32"
    ) -> None:
        self.space = space
        self.model = model
        self.dtype = dtype
        if model is not None and dtype not in model.ceilings:
            raise ValueError(
                f"the model was fitted on {sorted(model.ceilings) or 'nothing'}, not {dtype!r}"
            )
        self._ceilings = model.ceilings[dtype] if model is not None else (1.0, 1.0)
        self._cache: dict[tuple, np.ndarray] = {}
        self._blocks: dict[tuple, np.ndarray] = {}

    @property
    def cached_stages(self) -> int:
        """Stage sums computed so far."""
        return len(self._cache)

    def _sums(self, layers: Sequence[Layer]) -> np.ndarray:
        sums = feature_sums(layers, self.dtype, self._ceilings)
        return np.array([sums[c] for c in SUM_COLUMNS])

    def _stage(
        self, i: int, st: StageChoice, batch: int, cin: int, h: int
    ) -> tuple[np.ndarray, int]:
        key = (i, st, cin, h, batch)
        hit = self._cache.get(key)
        if hit is None:
            # the first block applies the stride; the others repeat one block (width in
            # and out, stride 1), whose sums are computed once and multiplied
            first, oh = self._block(st, cin, h, self.space.strides[i], batch)
            total = first.copy()
            if st.depth > 1:
                rest, _ = self._block(st, st.width, oh, 1, batch)
                total += (st.depth - 1) * rest
            hit = np.append(total, oh)
            self._cache[key] = hit
        return hit[:-1], int(hit[-1])

    def _block(
        self, st: StageChoice, cin: int, h: int, stride: int, batch: int
    ) -> tuple[np.ndarray, int]:
        key = ("block", st.block, st.expansion, st.kernel, st.se, st.width, cin, h, stride, batch)
        hit = self._blocks.get(key)
        if hit is None:
            layers: list[Layer] = []
            oh = _block(layers, st, batch, cin, h, stride, self.space.activation)
            hit = np.append(self._sums(layers), oh)
            self._blocks[key] = hit
        return hit[:-1], int(hit[-1])

    def _fixed(self, part: str, batch: int, c: int = 0, h: int = 0) -> tuple[np.ndarray, int]:
        key = (part, batch, c, h)
        hit = self._cache.get(key)
        if hit is None:
            if part == "stem":
                layers, oh = _stem_layers(self.space, batch)
            else:
                layers, oh = _head_layers(self.space, batch, c, h), 1
            hit = np.append(self._sums(layers), oh)
            self._cache[key] = hit
        return hit[:-1], int(hit[-1])

    def sums(self, archs: Sequence[Arch], batch: int = 1) -> np.ndarray:
        """The additive feature sums (:data:`~hwml.predict.pipeline.SUM_COLUMNS`) of each
        architecture (assumed canonical), shape ``(n, len(SUM_COLUMNS))``."""
        out = np.empty((len(archs), len(SUM_COLUMNS)))
        stem, h0 = self._fixed("stem", batch)
        for n, arch in enumerate(archs):
            total, h, c = stem.copy(), h0, self.space.stem
            for i, st in enumerate(arch):
                part, h = self._stage(i, st, batch, c, h)
                total += part
                c = st.width
            total += self._fixed("head", batch, c, h)[0]
            out[n] = total
        return out

    def features(self, archs: Sequence[Arch], batch: int = 1) -> pd.DataFrame:
        """The pipeline model's features of each architecture at ``batch`` (one row each:
        :data:`~hwml.predict.pipeline.FEATURE_COLUMNS`, ``dtype`` and ``batch``)."""
        sums = self.sums(archs, batch)
        frame = pd.DataFrame(sums, columns=list(SUM_COLUMNS))
        roof = frame["roof_ms"].to_numpy()
        frame["flop_share"] = np.divide(
            frame["compute_ms"].to_numpy(), roof, out=np.zeros(len(frame)), where=roof > 0
        )
        frame = frame[list(FEATURE_COLUMNS)]
        frame["dtype"] = self.dtype
        frame["batch"] = int(batch)
        return frame

    def flops(self, archs: Sequence[Arch], batch: int = 1) -> np.ndarray:
        """FLOPs of one forward pass of the batch, shape ``(n,)``."""
        return self.sums(archs, batch)[:, SUM_COLUMNS.index("flops")]

    def predict(self, archs: Sequence[Arch], batch: int = 1) -> pd.DataFrame:
        """The pipeline model's predictions for each architecture at ``batch``.

        The model's busy-power term is linear in the log of the network's roofline time
        and was fitted on networks far larger than most of a small-image space; for the
        smallest it extrapolates below the GPU's idle power (even below zero). A running
        GPU draws at least its idle power, so predicted powers are floored there
        (``power_floored`` says where) and the energies recomputed from them.

        Returns:
            One row per architecture: ``runtime_ms`` (eager forward of the batch),
            ``runtime_graph_ms`` (GPU time), ``host_ms``, ``device_ms``, ``bound``,
            ``power_w`` and ``energy_mj`` (eager), ``graph_power_w`` and
            ``graph_energy_mj`` (GPU energy of one forward, the counterpart of the
            benchmark's graph-window ``energy_mj``), ``energy_per_image_mj`` and
            ``graph_energy_per_image_mj`` (divided by the batch), ``power_floored``
            and ``flops``.

        Raises:
            ValueError: the pricer has no model.
        """
        if self.model is None:
            raise ValueError("this pricer has no pipeline model: FLOPs only")
        feats = self.features(archs, batch)
        out = self.model.predict(feats)
        idle = self.model.idle_w
        floored = (out["graph_power_w"] < idle).to_numpy()
        out["graph_power_w"] = np.maximum(out["graph_power_w"], idle)
        out["power_w"] = np.maximum(out["power_w"], idle)
        out["graph_energy_mj"] = out["graph_power_w"] * out["runtime_graph_ms"]
        out["energy_mj"] = out["power_w"] * out["runtime_ms"]
        out["energy_per_image_mj"] = out["energy_mj"] / int(batch)
        out["graph_energy_per_image_mj"] = out["graph_energy_mj"] / int(batch)
        out["power_floored"] = floored
        out["flops"] = feats["flops"].to_numpy()
        return out

    def warm(self, batches: Sequence[int] = (1,)) -> int:
        """Compute every stage sum the space can need at ``batches``.

        Returns:
            Stage sums now held.
        """
        sp = self.space
        for batch in batches:
            _, h = self._fixed("stem", batch)
            inputs = {(sp.stem, h)}
            for i, widths in enumerate(sp.widths):
                nxt = set()
                for cin, hin in inputs:
                    for st in _stage_choices(sp, widths):
                        _, oh = self._stage(i, st, batch, cin, hin)
                        nxt.add((st.width, oh))
                inputs = nxt
            for c, h in inputs:
                self._fixed("head", batch, c, h)
        return len(self._cache)


def _stage_choices(space: NASSpace, widths: Sequence[int]) -> list[StageChoice]:
    out = []
    for block in space.blocks:
        mb = block == "mbconv"
        for e in space.expansions if mb else (1,):
            for k in space.kernels:
                for se in space.se if mb else (False,):
                    for d in space.depths:
                        for w in widths:
                            out.append(StageChoice(block, int(e), int(k), bool(se), int(d), int(w)))
    return out


def pricing_rate(
    pricer: ArchPricer,
    n: int = 1000,
    *,
    seed: int = 0,
    batches: Sequence[int] = (1,),
    repeats: int = 3,
) -> dict[str, Any]:
    """How fast the pricer prices candidates it has not seen: ``n`` random architectures.

    Each repeat draws ``n`` new architectures (never drawn before in this call), prices
    them at every batch of ``batches`` (features and the model's prediction; FLOPs only
    without a model) and times that. The first repeat starts from the pricer's cache as it
    is (cold if new); later repeats see the stages the earlier ones filled in, as a search
    does.

    Returns:
        ``candidates`` (per repeat), ``batches``, ``seconds`` (per repeat, list),
        ``first_per_s`` (candidates per second of the first repeat, every batch priced),
        ``best_per_s`` (of the fastest repeat), ``cached_stages`` (after the last repeat).
    """
    archs = pricer.space.sample(n * repeats, seed)
    seconds = []
    for r in range(repeats):
        chunk = archs[r * n : (r + 1) * n]
        t0 = time.perf_counter()
        for b in batches:
            if pricer.model is None:
                pricer.flops(chunk, b)
            else:
                pricer.predict(chunk, b)
        seconds.append(time.perf_counter() - t0)
    return {
        "candidates": n,
        "batches": list(batches),
        "seconds": seconds,
        "first_per_s": n / seconds[0],
        "best_per_s": n / min(seconds),
        "cached_stages": pricer.cached_stages,
    }
