"""Training any image classifier on a data set held as tensors, and testing it.

* :func:`sgd_epochs` — the epochs of SGD with a cosine learning-rate decay to zero over all
  steps, whole batches drawn in a fresh random order each epoch, stopping at a NaN or
  infinite epoch loss (what :func:`hwml.tasks.cnn.train_cnn` and :func:`train_module`
  run);
* :func:`test_error` — the fraction of the test images a model misclassifies;
* :func:`train_module` — build a network from a callable, train it from scratch with a
  fixed seed and test it: the training of :func:`~hwml.tasks.cnn.train_cnn` for any
  ``nn.Module`` (the architecture search of :mod:`hwml.nas` trains its networks with it).

Units: seconds (``*_s``); ``test_error`` is a fraction in ``[0, 1]``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hwml.hardware import Device, as_torch_device, is_oom, release_memory, rng_devices, wait_for
from hwml.tasks.images import ImageData

__all__ = ["sgd_epochs", "test_error", "train_module"]


def sgd_epochs(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    order_gen: torch.Generator,
    lr: float,
    epochs: int,
    batch_size: int,
    out: dict[str, Any],
) -> None:
    """Run ``epochs`` of ``opt`` with a cosine decay of ``lr`` to zero over all steps.

    Each epoch visits the training set in a fresh order from ``order_gen``, in whole
    batches (the remainder is dropped, so every step has the same shape). ``out`` is
    updated after each epoch (``train_loss``: the epoch's mean loss, ``epochs_run``,
    ``steps``); at a NaN or infinite epoch loss the run stops with ``status="failed"``,
    ``diverged=True`` and a ``reason``.

    Args:
        model: the network (put in training mode here).
        opt: its optimizer; the learning rate of every group is set at each step.
        x_train: training images on the model's device, shape ``(n, c, s, s)``.
        y_train: their labels, shape ``(n,)``.
        order_gen: CPU generator of the batch order.
        lr: learning rate at the start of the decay.
        epochs: passes over the training set.
        batch_size: images per step (at most ``n``).
        out: the result mapping to update.
    """
    dev = x_train.device
    n_train = len(y_train)
    steps_per_epoch = n_train // batch_size
    total_steps = steps_per_epoch * epochs
    model.train()
    step = 0
    for epoch in range(epochs):
        order = torch.randperm(n_train, generator=order_gen)[: steps_per_epoch * batch_size]
        order = order.to(dev).view(steps_per_epoch, batch_size)
        loss_sum = torch.zeros((), device=dev)
        for idx in order:
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            step += 1
        epoch_loss = float(loss_sum.item()) / steps_per_epoch  # one sync per epoch
        out.update(train_loss=epoch_loss, epochs_run=epoch + 1, steps=step)
        if not math.isfinite(epoch_loss):
            out.update(
                status="failed",
                diverged=True,
                reason=f"diverged: training loss {epoch_loss} in epoch {epoch + 1}",
            )
            return


def test_error(model: nn.Module, data: ImageData, dev: torch.device) -> float:
    """Fraction of ``data``'s test images that ``model`` misclassifies (eval mode)."""
    model.eval()
    errors = 0
    with torch.inference_mode():
        for i in range(0, len(data.y_test), 1024):
            xb = data.x_test[i : i + 1024].to(dev)
            yb = data.y_test[i : i + 1024].to(dev)
            errors += int((model(xb).argmax(dim=1) != yb).sum().item())
    return errors / len(data.y_test)


def train_module(
    build: Callable[[], nn.Module],
    data: ImageData,
    *,
    device: str | torch.device | Device = "cpu",
    epochs: int = 5,
    batch_size: int = 64,
    learning_rate: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 4e-5,
    nesterov: bool = True,
    seed: int = 0,
    return_model: bool = False,
) -> dict[str, Any]:
    """Build a network, train it from scratch on ``data`` and measure its test error.

    SGD (Nesterov momentum by default) with weight decay on every parameter and the
    learning rate decayed to zero along a cosine over all steps (:func:`sgd_epochs`);
    cross-entropy loss; the data live on the device as tensors. The initial weights
    (``build`` is called under the seed) and the batch order come from ``seed`` alone
    (torch's generators are forked, so the caller's random state is untouched). A run
    whose epoch loss becomes NaN or infinite is returned with ``status="failed"``, one
    that runs out of device memory with ``status="oom"``; neither raises.

    Args:
        build: returns a fresh ``nn.Module`` mapping ``(batch, c, s, s)`` images to
            ``(batch, n_classes)`` logits.
        data: the training and test data.
        device: where to train.
        epochs: passes over the training set.
        batch_size: images per step.
        learning_rate: learning rate at the start of the cosine decay.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        nesterov: Nesterov momentum.
        seed: seed of the initial weights and the batch order.
        return_model: also return the trained network (``model``, on ``device``, in eval
            mode; None unless ``status`` is ok).

    Returns:
        ``test_error`` (NaN unless ``status`` is ok), ``train_loss`` (mean loss of the last
        epoch run), ``train_time_s`` (seconds to build, train and test, data already
        loaded), ``epochs_run``, ``steps``, ``params`` (learnable parameters), ``status``
        (``ok``, ``failed`` or ``oom``), ``reason`` (empty when ok), ``diverged``.

    Raises:
        ValueError: ``epochs`` or ``batch_size`` below 1, or a negative learning rate,
            momentum or weight decay.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    for name, value in (
        ("learning_rate", learning_rate),
        ("momentum", momentum),
        ("weight_decay", weight_decay),
    ):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    dev = as_torch_device(device)
    batch_size = min(int(batch_size), len(data.y_train))
    out: dict[str, Any] = {
        "test_error": math.nan,
        "train_loss": math.nan,
        "train_time_s": math.nan,
        "epochs_run": 0,
        "steps": 0,
        "params": math.nan,
        "status": "ok",
        "reason": "",
        "diverged": False,
    }
    start = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=rng_devices(dev)):
            torch.manual_seed(int(seed))
            order_gen = torch.Generator().manual_seed(int(seed))
            model = build().to(dev)
            out["params"] = sum(p.numel() for p in model.parameters())
            x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)
            opt = torch.optim.SGD(
                model.parameters(),
                lr=learning_rate,
                momentum=momentum,
                weight_decay=weight_decay,
                nesterov=nesterov and momentum > 0,
            )
            sgd_epochs(
                model, opt, x_train, y_train, order_gen, learning_rate, int(epochs), batch_size, out
            )
            if out["status"] == "ok":
                out["test_error"] = test_error(model, data, dev)
                if return_model:
                    out["model"] = model
    except (RuntimeError, MemoryError) as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if not is_oom(err):
            raise
        out.update(
            status="oom",
            reason=f"out of memory: {str(err).splitlines()[0][:200]}",
            test_error=math.nan,
        )
        release_memory(dev)
    finally:
        wait_for(dev)
        out["train_time_s"] = time.perf_counter() - start
    if return_model:
        out.setdefault("model", None)
    return out
