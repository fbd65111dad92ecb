"""Where work runs: in this process, on every GPU of this machine, or on a Dask cluster.

The expensive work of hwml (profiling sweeps, the trainings of a benchmark, the trainings
of a live search) is a list of independent tasks. One small layer runs them, the same
way on one GPU, on all GPUs of a box and on a cluster, through Dask distributed:

* ``process``: in this process, one task after the other (no Dask involved);
* ``local`` (the default of every command): a :class:`distributed.SpecCluster` on this
  machine with one worker process per visible GPU (``CUDA_VISIBLE_DEVICES`` set per
  worker, so ``"cuda"`` in a worker is its own GPU), and this process alone when there
  is only one device;
* ``local:N``: ``N`` worker processes on this machine (with GPUs: spread over them in
  turn, so ``local:8`` on two GPUs puts four workers on each);
* ``tcp://HOST:PORT`` (or ``tls://``): the workers of a running Dask scheduler, e.g. one
  started by ``dask-jobqueue`` on a SLURM or PBS cluster.

Every worker declares the resource ``GPU=1`` and every task asks for it, so a worker
runs one task at a time and a GPU is never shared by two tasks of one worker (workers
of a remote scheduler must be started with ``--resources GPU=1``, CPU-only ones too).

Results flow back to the one process that called :meth:`Cluster.map_unordered`, in
the order they finish; that process alone writes them (to a dataset table or a search
history), so an interrupted run loses at most the tasks in flight and resumes from the
rows written. A task whose function raises is returned with the error as its reason.
A worker process that dies mid-task (killed, out of host memory) is restarted by its
nanny and the scheduler runs the task again on a live worker; a task that kills
``allowed_failures + 1`` workers comes back failed with the reason ``KilledWorker``.
Other tasks go on either way.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLUSTER_HELP",
    "Cluster",
    "ClusterSpec",
    "SerialExecutor",
    "TaskResult",
    "open_cluster",
    "parse_cluster",
    "visible_gpus",
]

CLUSTER_HELP = (
    "where the work runs: 'local' (default: one Dask worker per visible GPU, in this "
    "process when there is one device), 'local:N' (N worker processes on this machine), "
    "'process' (this process only) or the address of a Dask scheduler, tcp://HOST:PORT "
    "(workers started with --resources GPU=1)"
)

GPU = "GPU"
"""The worker resource every task asks one of (a slot on a device)."""

logger = logging.getLogger(__name__)


# ====================================================================== the spec


@dataclass(frozen=True)
class ClusterSpec:
    """Where a command's tasks run, as ``--cluster`` names it.

    Attributes:
        kind: ``"process"`` (this process), ``"local"`` (worker processes on this
            machine) or ``"remote"`` (a Dask scheduler's workers).
        n_workers: worker processes of a ``"local"`` cluster; None: one per visible
            GPU (times the workers per GPU the command asks for).
        address: the scheduler's address of a ``"remote"`` cluster.
    """

    kind: str
    n_workers: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("process", "local", "remote"):
            raise ValueError(f"cluster kind must be process, local or remote, got {self.kind!r}")
        if self.kind == "remote" and not self.address:
            raise ValueError("a remote cluster needs a scheduler address")
        if self.n_workers is not None and self.n_workers < 1:
            raise ValueError(f"a cluster needs at least one worker, got {self.n_workers}")

    def __str__(self) -> str:
        if self.kind == "remote":
            return str(self.address)
        if self.kind == "local" and self.n_workers is not None:
            return f"local:{self.n_workers}"
        return self.kind


_SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://")


def parse_cluster(text: str | ClusterSpec | None) -> ClusterSpec:
    """Parse a ``--cluster`` value.

    Args:
        text: ``"local"``, ``"local:N"`` (N >= 1), ``"process"`` or a scheduler address
            ``tcp://HOST:PORT`` (``tls://`` too); None means ``"local"``. A
            :class:`ClusterSpec` is returned as it is.

    Returns:
        The spec.

    Raises:
        ValueError: anything else, with the accepted forms in the message.
    """
    if isinstance(text, ClusterSpec):
        return text
    if text is None:
        return ClusterSpec("local")
    value = str(text).strip()
    forms = "expected local, local:N (N >= 1), process or tcp://HOST:PORT"
    if value in ("local", "process"):
        return ClusterSpec(value)
    if value.startswith("local:"):
        count = value.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--cluster {value!r}: {forms}")
        return ClusterSpec("local", n_workers=int(count))
    if value.startswith(_SCHEMES):
        rest = value.split("://", 1)[1]
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--cluster {value!r}: a scheduler address needs HOST:PORT; {forms}")
        return ClusterSpec("remote", address=value)
    raise ValueError(f"--cluster {value!r}: {forms}")


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries.

    Returns:
        The entries of ``CUDA_VISIBLE_DEVICES`` when it is set (an empty value: none),
        else ``"0" .. "n-1"`` for the devices torch counts (none without CUDA).
    """
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    from hwml.hardware import cuda_device_count

    return [str(i) for i in range(cuda_device_count())]


# ====================================================================== results


@dataclass(frozen=True)
class TaskResult:
    """What came back from one task.

    Attributes:
        key: the key the task was submitted with.
        value: the function's return value (None when the task failed).
        error: empty when the task ran; else why it failed, as ``"Type: message"``
            (``"KilledWorker: ..."`` when it killed the workers that ran it).
        worker: where it ran (a worker's address, or ``"process"``).
    """

    key: Any
    value: Any = None
    error: str = ""
    worker: str = "process"

    @property
    def ok(self) -> bool:
        """True when the task returned a value."""
        return not self.error


def _reason(err: BaseException) -> str:
    text = str(err).splitlines()[0][:300] if str(err) else ""
    return f"{type(err).__name__}: {text}".rstrip(": ")


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, str, str]:
    """Run ``fn(*args)`` where the task runs: ``(value, error, where)``; an exception of
    the function is returned as its reason rather than raised (it is data, not a crash)."""
    where = _where()
    try:
        return fn(*args), "", where
    except Exception as err:  # noqa: BLE001 - the reason goes back to the driver
        return None, _reason(err), where


def _where() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "process"


class SerialExecutor(cf.Executor):
    """A :class:`concurrent.futures.Executor` that runs each task when it is submitted,
    in this process (the ``process`` cluster's executor)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(err)
        return future


# ====================================================================== the cluster


class Cluster:
    """An open place to run tasks (:func:`open_cluster`); a context manager.

    Attributes:
        spec: what was asked for.
        kind: ``"process"``, ``"local"`` or ``"remote"`` (``local`` with one device
            becomes ``process``).
        n_workers: workers able to run a task (1 in process).
        client: the Dask client (None in process).
    """

    def __init__(
        self,
        spec: ClusterSpec,
        kind: str,
        n_workers: int,
        client: Any = None,
        cluster: Any = None,
    ) -> None:
        self.spec = spec
        self.kind = kind
        self.n_workers = n_workers
        self.client = client
        self._cluster = cluster
        self._lock = threading.Lock()

    @property
    def in_process(self) -> bool:
        """True when tasks run in this process, one after the other."""
        return self.client is None

    def describe(self) -> str:
        """One line for logs: where the tasks run."""
        if self.in_process:
            return "this process"
        where = self.spec.address if self.kind == "remote" else "this machine"
        return f"{self.n_workers} Dask worker(s) on {where}"

    def facts(self) -> dict[str, Any]:
        """What a run log records about where its tasks ran."""
        return {"cluster": str(self.spec), "cluster_kind": self.kind, "workers": self.n_workers}

    # ---------------------------------------------------------------- running

    def executor(self) -> cf.Executor:
        """A :class:`concurrent.futures.Executor` whose tasks each take one ``GPU`` slot.

        Its futures are ``concurrent.futures.Future``: a task that killed its workers
        raises ``KilledWorker`` from :meth:`~concurrent.futures.Future.result`.
        """
        if self.in_process:
            return SerialExecutor()
        return self.client.get_executor(resources={GPU: 1}, pure=False)

    def map_unordered(
        self,
        fn: Callable[..., Any],
        items: Iterable[tuple[Any, tuple[Any, ...]]],
    ) -> Iterator[TaskResult]:
        """Run ``fn(*args)`` for each ``(key, args)`` and yield results as they finish.

        In process the tasks run in order, one at a time. On a cluster as many tasks as
        there are workers are in flight, each holding one ``GPU`` slot; when one finishes
        the next of ``items`` takes its place (so the free worker gets it, never a busy
        one), and results come back in the order they finish; the caller (one process)
        writes them. Leaving the loop early (an exception, Ctrl-C) cancels the tasks in
        flight.

        Args:
            fn: a function importable on the workers (a module-level function or a
                :func:`functools.partial` of one), called as ``fn(*args)``.
            items: ``(key, args)`` pairs; keys are handed back unchanged.

        Yields:
            One :class:`TaskResult` per item.
        """
        if self.in_process:
            for key, args in items:
                value, error, where = _call(fn, tuple(args))
                yield TaskResult(key, value, error, where)
            return
        from distributed import as_completed

        todo = iter(items)
        running: dict[str, tuple[Any, Any]] = {}
        done = as_completed([], loop=self.client.loop)

        def submit_next() -> None:
            for key, args in todo:
                future = self.client.submit(_call, fn, tuple(args), resources={GPU: 1}, pure=False)
                running[future.key] = (key, future)
                done.add(future)
                return

        try:
            for _ in range(self.n_workers):
                submit_next()
            for future in done:
                key = running.pop(future.key)[0]
                try:
                    value, error, where = future.result()
                except Exception as err:  # noqa: BLE001 - KilledWorker, lost connection
                    value, error, where = None, _reason(err), "lost"
                submit_next()  # the freed slot takes the next task at once
                yield TaskResult(key, value, error, where)
        finally:
            left = [f for _, f in running.values()]
            if left:
                self.client.cancel(left)

    def run_on_workers(self, fn: Callable[[], Any]) -> dict[str, Any]:
        """Call ``fn()`` once in every worker (outside the task queue): ``{worker: value}``.

        In process: ``{"process": fn()}``. Used for facts of each worker's device.
        """
        if self.in_process:
            return {"process": fn()}
        return dict(self.client.run(fn))

    def close(self) -> None:
        """Close the client and stop a cluster started here (its workers end)."""
        with self._lock:
            if self.client is not None:
                try:
                    self.client.close()
                finally:
                    if self._cluster is not None:
                        self._cluster.close()
                self._cluster = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _local_workers(
    n_workers: int,
    gpus: list[str],
    threads_per_worker: int | None,
    memory_limit: str | float | int,
) -> dict[str, dict[str, Any]]:
    """The worker specs of a local cluster: one nanny-managed process each, pinned to a
    GPU in turn when there are GPUs, each with its share of the host's cores."""
    from distributed import Nanny

    cores = os.cpu_count() or 1
    threads = threads_per_worker or max(1, cores // n_workers)
    specs = {}
    for w in range(n_workers):
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[w % len(gpus)]
        specs[f"hwml-{w}"] = {
            "cls": Nanny,
            "options": {
                "nthreads": 1,
                "env": env,
                "resources": {GPU: 1},
                "memory_limit": memory_limit,
                "silence_logs": logging.ERROR,
                "dashboard_address": ":0",
                "dashboard": False,
            },
        }
    return specs


def open_cluster(
    spec: ClusterSpec | str | None = None,
    *,
    device: str = "cuda",
    workers_per_gpu: int = 1,
    threads_per_worker: int | None = None,
    allowed_failures: int = 2,
    memory_limit: str | float | int = 0,
    timeout_s: float = 60.0,
) -> Cluster:
    """Start (or connect to) the place where a command's tasks run.

    Args:
        spec: a :class:`ClusterSpec` or a ``--cluster`` string (:func:`parse_cluster`);
            None is ``"local"``.
        device: the device the tasks use (``"cuda"``, ``"cuda:N"``, ``"cpu"``); with
            ``"local"`` it decides how many workers start: one per visible GPU (times
            ``workers_per_gpu``) for ``"cuda"``, this process alone for ``"cpu"`` and
            ``"cuda:N"``.
        workers_per_gpu: worker processes per GPU of a ``"local"`` cluster without a
            count (e.g. trainings sharing a GPU).
        threads_per_worker: CPU threads (``OMP_NUM_THREADS``) of each local worker;
            None: the host's cores divided among the workers.
        allowed_failures: times a task may kill its worker before it is given up as
            ``KilledWorker`` (it is run again on a live worker until then); set on a
            scheduler started here only.
        memory_limit: host memory each local worker may use before its nanny restarts
            it (Dask's forms, e.g. ``"8GiB"``); 0: no limit.
        timeout_s: how long to wait for a remote scheduler and its first worker.

    Returns:
        The open :class:`Cluster` (close it, or use it as a context manager).

    Raises:
        ValueError: a bad spec.
        RuntimeError: a remote scheduler has no worker with the ``GPU`` resource.
    """
    spec = parse_cluster(spec)
    if spec.kind == "process":
        return Cluster(spec, "process", 1)
    if spec.kind == "local":
        gpus = visible_gpus() if str(device) == "cuda" else []
        if str(device).startswith("cuda:"):  # one named device: pin nothing, run here
            gpus = []
        n = spec.n_workers
        if n is None:
            n = max(1, len(gpus)) * max(1, workers_per_gpu)
        if n <= 1 and spec.n_workers is None:
            return Cluster(spec, "process", 1)
        return _start_local(spec, n, gpus, threads_per_worker, allowed_failures, memory_limit)
    return _connect(spec, timeout_s)


def _start_local(
    spec: ClusterSpec,
    n: int,
    gpus: list[str],
    threads_per_worker: int | None,
    allowed_failures: int,
    memory_limit: str | float | int,
) -> Cluster:
    import dask
    from distributed import Client, Scheduler, SpecCluster

    workers = _local_workers(n, gpus, threads_per_worker, memory_limit)
    scheduler = {
        "cls": Scheduler,
        "options": {"dashboard_address": ":0", "host": "127.0.0.1", "dashboard": False},
    }
    settings = {
        "distributed.scheduler.allowed-failures": int(allowed_failures),
        "distributed.worker.daemon": False,  # a worker may start processes of its own
        "distributed.admin.tick.limit": "1h",  # a long training holds the GIL; no alarm
        "logging": {"distributed": "error"},
    }
    # Dask logs every worker's start and stop at INFO on stderr: keep a command's output
    # to what it says itself (warnings and errors of the cluster still show).
    logging.getLogger("distributed").setLevel(logging.WARNING)
    with dask.config.set(settings):
        cluster = SpecCluster(
            workers=workers, scheduler=scheduler, silence_logs=logging.ERROR, name="hwml"
        )
        client = Client(cluster, set_as_default=False)
    client.wait_for_workers(n)
    logger.info("local Dask cluster: %d workers, GPUs %s", n, gpus or "none")
    return Cluster(spec, "local", n, client, cluster)


def _connect(spec: ClusterSpec, timeout_s: float) -> Cluster:
    from distributed import Client

    client = Client(spec.address, timeout=timeout_s, set_as_default=False)
    deadline = time.monotonic() + timeout_s
    slots = 0
    while time.monotonic() < deadline:
        workers = client.scheduler_info().get("workers", {})
        slots = sum(int(math.floor(w.get("resources", {}).get(GPU, 0))) for w in workers.values())
        if slots:
            break
        time.sleep(0.5)
    if not slots:
        client.close()
        raise RuntimeError(
            f"the scheduler at {spec.address} has no worker with the {GPU} resource after "
            f"{timeout_s:.0f} s: start workers with `dask worker {spec.address} "
            f"--nworkers 1 --nthreads 1 --resources {GPU}=1` (CPU-only workers too)"
        )
    return Cluster(spec, "remote", slots, client)
