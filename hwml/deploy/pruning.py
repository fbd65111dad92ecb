"""Pruning a trained model: unstructured, 2:4 semi-structured, and whole channels.

* :func:`prune_unstructured` — zero the smallest-magnitude weights of every convolution
  and dense layer to a target sparsity (``torch.nn.utils.prune``, globally or layer by
  layer), optionally fine-tune with the masks held, then make the zeros permanent. The
  model keeps its shape and dense storage: the saving is only real on hardware or
  kernels that skip zeros, which a GPU's dense kernels do not.
* :func:`prune_2to4` — keep the two largest-magnitude weights of every four consecutive
  weights along the input dimension (the pattern of NVIDIA's sparse tensor cores);
  convolutions optionally, as the GEMM they lower to (input channels x kernel taps).
  :func:`to_semi_structured` then stores dense layers as
  ``torch.sparse.to_sparse_semi_structured`` tensors where the device runs them
  (:func:`semi_structured_backend`: CUDA compute capability >= 8.0 with fp16/bf16
  weights); elsewhere the masked weight stays dense and is reported ``emulated (dense)``.
  :func:`is_2to4` checks the pattern.
* :func:`prune_channels` — remove the filters of each convolution with the lowest L1 norm,
  and the hidden dense units likewise, together with the matching input channels of the
  next layer: a genuinely smaller :class:`~hwml.tasks.cnn.CNN` (fewer FLOPs on any
  hardware), with the same output shape and the new structure as a :func:`build_cnn`
  configuration.

Every function works on a copy (the trained model is not modified) and takes an optional
``fine_tune`` callback, ``fine_tune(model) -> Any``, run on the pruned model before it is
returned; :func:`fine_tuner` makes one that trains with SGD on an
:class:`~hwml.tasks.images.ImageData` (as :func:`~hwml.tasks.cnn.train_cnn` does). Its
return value is reported under ``fine_tune``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import prune

from hwml.hardware import Device, cuda_capability
from hwml.tasks.cnn import CNN, build_cnn
from hwml.tasks.images import ImageData

__all__ = [
    "FineTune",
    "SEMI_STRUCTURED",
    "fine_tuner",
    "is_2to4",
    "mask_2to4",
    "prune_2to4",
    "prune_channels",
    "prune_unstructured",
    "semi_structured_backend",
    "sparsity",
    "to_semi_structured",
]

FineTune = Callable[[nn.Module], Any]
"""A fine-tuning step: trains the model it is given in place; its return is reported."""

SEMI_STRUCTURED = "sparse-semi-structured"
"""Backend name of :func:`semi_structured_backend` when the sparse tensor cores are used."""

_EMULATED = "emulated (dense)"


def _layers(model: nn.Module, kinds: Sequence[type[nn.Module]]) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, tuple(kinds))]


def sparsity(model: nn.Module, kinds: Sequence[type[nn.Module]] = (nn.Conv2d, nn.Linear)) -> dict:
    """Zero weights of the given layer kinds (biases not counted).

    Returns:
        ``weights`` (count), ``zeros`` (count), ``sparsity`` (fraction), ``per_layer``
        (name -> fraction).
    """
    total = zeros = 0
    per_layer = {}
    for name, m in _layers(model, kinds):
        w = m.weight.detach()
        n, z = w.numel(), int((w == 0).sum())
        total, zeros = total + n, zeros + z
        per_layer[name] = z / n
    return {
        "weights": total,
        "zeros": zeros,
        "sparsity": zeros / total if total else math.nan,
        "per_layer": per_layer,
    }


def _finish(model: nn.Module, fine_tune: FineTune | None, info: dict) -> None:
    """Run the fine-tuning callback (masks still held), then make the pruning permanent."""
    if fine_tune is not None:
        model.train()
        info["fine_tune"] = fine_tune(model)
    for _, m in list(model.named_modules()):
        if prune.is_pruned(m) and hasattr(m, "weight_orig"):
            prune.remove(m, "weight")
    model.eval()


def prune_unstructured(
    model: nn.Module,
    amount: float,
    *,
    scope: str = "global",
    kinds: Sequence[type[nn.Module]] = (nn.Conv2d, nn.Linear),
    fine_tune: FineTune | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Magnitude pruning to a target fraction of zero weights, made permanent.

    Args:
        model: the trained model (copied, not modified).
        amount: target fraction of weights set to zero, in ``[0, 1)``.
        scope: ``"global"`` (the smallest weights over all layers together; layers end
            with different sparsities) or ``"layer"`` (each layer to ``amount``).
        kinds: layer types whose ``weight`` is pruned (biases are not).
        fine_tune: run with the masks held (pruned weights stay zero while training).

    Returns:
        ``(model, info)``; info: ``method``, ``target``, and :func:`sparsity`'s fields
        after pruning (and fine-tuning).
    """
    if not 0.0 <= float(amount) < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    model = copy.deepcopy(model)
    targets = [(m, "weight") for _, m in _layers(model, kinds)]
    if not targets:
        raise ValueError("model has no layer of the kinds to prune")
    if scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    else:
        for m, name in targets:
            prune.l1_unstructured(m, name, amount=amount)
    info: dict[str, Any] = {"method": f"unstructured L1 magnitude ({scope})", "target": amount}
    _finish(model, fine_tune, info)
    info.update(sparsity(model, kinds))
    return model, info


# ====================================================================== 2:4


def _gemm_view(weight: torch.Tensor) -> torch.Tensor:
    """The weight as the GEMM operand ``(out, in * taps)`` (convolutions flattened)."""
    return weight.reshape(weight.shape[0], -1)


def mask_2to4(weight: torch.Tensor) -> torch.Tensor:
    """The 2:4 mask of a weight: in every four consecutive weights along the input
    dimension (of the GEMM view, for a convolution), the two of largest magnitude.

    Raises:
        ValueError: the input dimension is not a multiple of 4.
    """
    w = _gemm_view(weight.detach())
    if w.shape[1] % 4:
        raise ValueError(f"2:4 needs an input dimension divisible by 4, got {w.shape[1]}")
    groups = w.abs().reshape(-1, 4)
    top = groups.topk(2, dim=1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, top, True)
    return mask.reshape(weight.shape)


def is_2to4(weight: torch.Tensor) -> bool:
    """Whether every four consecutive weights along the input dimension hold at most two
    nonzeros (False when that dimension is not a multiple of 4)."""
    if getattr(weight, "is_sparse", False) or type(weight).__name__.startswith("SparseSemi"):
        weight = weight.to_dense()
    w = _gemm_view(weight.detach())
    if w.shape[1] % 4:
        return False
    return bool(((w.reshape(-1, 4) != 0).sum(dim=1) <= 2).all())


def prune_2to4(
    model: nn.Module,
    *,
    conv: bool = False,
    fine_tune: FineTune | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """2:4 semi-structured pruning of dense layers (and of convolutions with ``conv``).

    Layers whose input dimension is not a multiple of 4 are left dense and listed under
    ``skipped``. The weights stay dense tensors with zeros; see :func:`to_semi_structured`
    for the sparse storage the GPU's sparse tensor cores use.

    Args:
        model: the trained model (copied, not modified).
        conv: prune convolutions too, as their GEMM ``(out, in * kh * kw)``.
        fine_tune: run with the masks held.

    Returns:
        ``(model, info)``; info: ``method``, ``pruned`` and ``skipped`` (layer names), and
        :func:`sparsity`'s fields.
    """
    model = copy.deepcopy(model)
    kinds: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d) if conv else (nn.Linear,)
    pruned, skipped = [], []
    for name, m in _layers(model, kinds):
        if _gemm_view(m.weight).shape[1] % 4:
            skipped.append(name)
            continue
        prune.custom_from_mask(m, "weight", mask_2to4(m.weight))
        pruned.append(name)
    info: dict[str, Any] = {"method": "2:4 semi-structured", "pruned": pruned, "skipped": skipped}
    _finish(model, fine_tune, info)
    info.update(sparsity(model, kinds))
    return model, info


def semi_structured_backend(device: str | torch.device | Device, dtype: torch.dtype) -> str:
    """How 2:4 weights run: :data:`SEMI_STRUCTURED` (sparse tensor cores: CUDA with compute
    capability >= 8.0 and float16/bfloat16 weights) or ``"emulated (dense)"``."""
    dev = device.torch_device if isinstance(device, Device) else torch.device(device)
    cap = cuda_capability(dev)
    if cap is not None and cap >= (8, 0) and dtype in (torch.float16, torch.bfloat16):
        return SEMI_STRUCTURED
    return _EMULATED


def to_semi_structured(
    model: nn.Module, device: str | torch.device | Device
) -> tuple[nn.Module, dict[str, Any]]:
    """Store the 2:4 dense layers of a model as semi-structured sparse tensors, where the
    device runs them; elsewhere keep them dense.

    The model must already be on ``device`` in its final dtype (float16 or bfloat16 for
    the sparse path). Layers whose weight is not 2:4, or whose shape the sparse kernels
    reject, stay dense and are listed with the reason. Works on a copy.

    Returns:
        ``(model, info)``; info: ``backend`` (:func:`semi_structured_backend`),
        ``converted`` (layer names), ``dense`` (layer name -> why it stayed dense).
    """
    model = copy.deepcopy(model)
    linears = _layers(model, (nn.Linear,))
    dtype = linears[0][1].weight.dtype if linears else torch.float32
    backend = semi_structured_backend(device, dtype)
    info: dict[str, Any] = {"backend": backend, "converted": [], "dense": {}}
    for name, m in linears:
        if backend != SEMI_STRUCTURED:
            info["dense"][name] = _EMULATED
            continue
        if not is_2to4(m.weight):
            info["dense"][name] = "weight is not 2:4"
            continue
        try:
            from torch.sparse import to_sparse_semi_structured

            m.weight = nn.Parameter(
                to_sparse_semi_structured(m.weight.detach()), requires_grad=False
            )
            info["converted"].append(name)
        except (RuntimeError, ValueError) as err:  # shape or dtype the kernels reject
            info["dense"][name] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    return model, info


# ====================================================================== channels


def _keep(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"keep fractions must be in (0, 1], got {fraction}")
    n = max(1, int(round(float(fraction) * len(scores))))
    return scores.topk(n).indices.sort().values


def _cnn_parts(
    model: nn.Module,
) -> tuple[nn.Conv2d, nn.BatchNorm2d | None, nn.Conv2d, nn.Linear, nn.Linear]:
    if not isinstance(model, CNN):
        raise TypeError(f"channel pruning works on hwml.tasks.cnn.CNN, got {type(model).__name__}")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
    return convs[0], (bns[0] if bns else None), convs[1], fcs[0], fcs[1]


def prune_channels(
    model: CNN,
    *,
    conv1_keep: float = 1.0,
    conv2_keep: float = 1.0,
    dense_keep: float = 1.0,
    fine_tune: FineTune | None = None,
) -> tuple[CNN, dict[str, Any]]:
    """Structured pruning of the HyperPower CNN into a smaller CNN of the same family.

    Filters of each convolution are ranked by the L1 norm of their weights, hidden dense
    units by the L1 norm of their incoming weights; the lowest are removed together with
    what reads them (batch-norm channels, the next convolution's input channels, the
    dense layer's input columns of that channel's pixels, the output layer's columns).
    The kept ones stay in their original order, so keeping everything reproduces the
    model exactly.

    Args:
        model: a trained :class:`~hwml.tasks.cnn.CNN` (not modified).
        conv1_keep: fraction of the first convolution's filters kept, in ``(0, 1]``.
        conv2_keep: fraction of the second convolution's filters kept.
        dense_keep: fraction of the hidden dense units kept.
        fine_tune: run on the smaller model before it is returned.

    Returns:
        ``(model, info)``; info: ``config`` (the four structural fields, for
        :func:`~hwml.tasks.cnn.build_cnn`), ``kept`` (layer -> indices kept),
        ``params_before``, ``params_after``.
    """
    conv1, bn, conv2, fc1, fc2 = _cnn_parts(model)
    pixels = fc1.in_features // conv2.out_channels
    side = 4 * math.isqrt(pixels)
    k1 = _keep(conv1.weight.detach().abs().sum(dim=(1, 2, 3)), conv1_keep)
    k2 = _keep(conv2.weight.detach().abs().sum(dim=(1, 2, 3)), conv2_keep)
    kd = _keep(fc1.weight.detach().abs().sum(dim=1), dense_keep)
    config = {
        "conv1_filters": len(k1),
        "conv2_filters": len(k2),
        "kernel_size": conv1.kernel_size[0],
        "dense_units": len(kd),
    }
    small = build_cnn(
        config,
        side,
        in_channels=conv1.in_channels,
        n_classes=fc2.out_features,
        batch_norm=bn is not None,
    ).to(device=conv1.weight.device, dtype=conv1.weight.dtype)
    s_conv1, s_bn, s_conv2, s_fc1, s_fc2 = _cnn_parts(small)
    cols = (k2[:, None] * pixels + torch.arange(pixels, device=k2.device)[None, :]).reshape(-1)
    with torch.no_grad():
        s_conv1.weight.copy_(conv1.weight[k1])
        if conv1.bias is not None:
            s_conv1.bias.copy_(conv1.bias[k1])
        if bn is not None:
            for attr in ("weight", "bias", "running_mean", "running_var"):
                getattr(s_bn, attr).copy_(getattr(bn, attr)[k1])
            s_bn.num_batches_tracked.copy_(bn.num_batches_tracked)
        s_conv2.weight.copy_(conv2.weight[k2][:, k1])
        s_conv2.bias.copy_(conv2.bias[k2])
        s_fc1.weight.copy_(fc1.weight[kd][:, cols])
        s_fc1.bias.copy_(fc1.bias[kd])
        s_fc2.weight.copy_(fc2.weight[:, kd])
        s_fc2.bias.copy_(fc2.bias)
    info: dict[str, Any] = {
        "method": "structured L1 channel pruning",
        "config": config,
        "kept": {"conv1": k1.tolist(), "conv2": k2.tolist(), "dense": kd.tolist()},
        "params_before": sum(p.numel() for p in model.parameters()),
        "params_after": sum(p.numel() for p in small.parameters()),
    }
    small.train(model.training)
    if fine_tune is not None:
        small.train()
        info["fine_tune"] = fine_tune(small)
    small.eval()
    return small, info


# ====================================================================== fine-tuning


def fine_tuner(
    data: ImageData,
    *,
    epochs: int = 1,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    device: str | torch.device | Device = "cpu",
    seed: int = 0,
) -> FineTune:
    """A fine-tuning callback: SGD with momentum on ``data``'s training set.

    Constant learning rate (a fine-tune starts from trained weights, so no warm-up or
    decay), full batches in a random order from ``seed``, cross-entropy loss; the model is
    moved to ``device``. Pruning masks held by ``torch.nn.utils.prune`` keep pruned
    weights at zero throughout.

    Returns:
        ``fine_tune(model) -> {"train_loss": mean loss of the last epoch, "steps": n}``.
    """
    dev = device.torch_device if isinstance(device, Device) else torch.device(device)

    def fine_tune(model: nn.Module) -> dict[str, Any]:
        model.to(dev).train()
        x, y = data.x_train.to(dev), data.y_train.to(dev)
        n = len(y)
        bs = min(int(batch_size), n)
        opt = torch.optim.SGD(
            model.parameters(), lr=learning_rate, momentum=momentum, weight_decay=weight_decay
        )
        gen = torch.Generator().manual_seed(int(seed))
        loss_sum, steps = torch.zeros((), device=dev), 0
        for _ in range(int(epochs)):
            order = torch.randperm(n, generator=gen)[: (n // bs) * bs].to(dev).view(-1, bs)
            loss_sum.zero_()
            for idx in order:
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach()
                steps += 1
        model.eval()
        return {"train_loss": float(loss_sum) / max(1, n // bs), "steps": steps}

    return fine_tune
