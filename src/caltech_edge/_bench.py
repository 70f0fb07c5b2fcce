"""Shared benchmark plumbing: timing, machine description, markdown tables.

Every benchmark (the ``caltech-edge benchmark`` command and the scripts in ``benchmarks/``)
reports the same statistics and the same machine facts, so their numbers can sit side by
side in docs/.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

_PACKAGES = (
    "caltech-edge", "numpy", "opencv-python-headless", "torch", "torchvision", "onnx",
    "onnxruntime", "openvino", "nncf", "mxnet", "torch-pruning",
)  # fmt: skip


@dataclass(frozen=True)
class Timing:
    """Latency statistics of repeated calls, in milliseconds."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    iters: int

    @property
    def per_second(self) -> float:
        return 1000.0 / self.median_ms if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, float]:
        return {
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "mean_ms": self.mean_ms,
            "min_ms": self.min_ms,
            "iters": self.iters,
            "per_second": self.per_second,
        }


def _block_ms(fn: Callable[[], Any], calls: int) -> list[float]:
    """``calls`` back-to-back timed calls of ``fn``, in milliseconds (perf_counter): the one
    timing loop every timer here uses."""
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def time_ms(fn: Callable[[], Any], *, warmup: int = 5, iters: int = 30) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``iters`` times timed (perf_counter)."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    for _ in range(warmup):
        fn()
    return _timing(_block_ms(fn, iters))


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]],
    *,
    warmup: int = 5,
    iters: int = 30,
    rounds: int = 5,
    settle_s: float = 0.05,
) -> dict[str, Timing]:
    """Time several callables in alternating rounds so machine load hits all of them alike.

    Timing one candidate after another lets a burst of background load land on one of them
    only; interleaving spreads it, which keeps the *ratios* honest on a shared machine.
    Before each block we pause ``settle_s``: ONNX Runtime's and OpenVINO's worker threads
    spin for a while after a call, and would otherwise steal the cores of the next candidate.
    """
    per_round = max(1, iters // rounds)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(settle_s)
            samples[name] += _block_ms(fn, per_round)
    return {name: _timing(values) for name, values in samples.items()}


def paired_ratios(
    reference: str,
    fns: Mapping[str, Callable[[], Any]],
    *,
    warmup: int = 10,
    rounds: int = 20,
    per_block: int = 15,
    settle_s: float = 0.02,
) -> dict[str, float]:
    """``reference``'s time over each callable's, as the median of per-round ratios.

    For ratios of a few percent between callables that share one engine (our runtime and
    the bare call on the interpreter it loaded). Each round times a short block of each
    (the order reversed every other round) and divides block medians within the round, so
    a drift of the machine's speed slower than a round cancels. Three long blocks did not:
    on the ~1 ms SqueezeNet rows they once gave 1.168 (ours faster than the bare call on
    the same interpreter) and 0.742, where paired blocks right after gave 0.967 and 0.962
    with per-round interquartile ranges inside 0.96-0.97.
    """
    names = list(fns)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    blocks: dict[str, list[float]] = {name: [] for name in names}
    for index in range(max(1, rounds)):
        for name in names if index % 2 == 0 else names[::-1]:
            time.sleep(settle_s)
            blocks[name].append(statistics.median(_block_ms(fns[name], max(1, per_block))))
    ref = blocks[reference]
    return {
        name: statistics.median([r / c if c > 0 else 1.0 for r, c in zip(ref, blocks[name])])
        for name in names
    }


def _timing(samples: list[float]) -> Timing:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return Timing(
        statistics.median(samples), p90, statistics.fmean(samples), ordered[0], len(samples)
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


def machine_info() -> dict[str, Any]:
    """CPU model, cores, ISA flags, Python and library versions, for benchmark JSON files."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def markdown_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub markdown table; floats get 2-4 significant decimals, None prints as '-'."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
