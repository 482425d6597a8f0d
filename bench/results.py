"""The benchmark's results, typed: what each experiment returns, and what results.json holds.

Every experiment returns these records (bursts.sweep: Burst rows, rates.sweep: Rate rows,
workers.sweep: Workers rows, work.sweep: Work rows, passthrough.measure: Passthrough, loadgen.measure: Loadgen,
machine.describe: Machine, goals.check: Goal rows), and the report and the charts read them
by field. `python -m bench` collects them in one Results and writes Results.to_json():
each record's fields are the JSON object's keys, in the same order.

Results.from_json(data) reads a saved run back. It reads any JSON-like value, a run that
skipped steps or an older one: what is missing or of the wrong shape (null, NaN, a string
for a number) is None, or an empty list or dict, and the report says "not measured in this
run" for it. For what the benchmark writes, from_json(data).to_json() == data
(tests/test_bench_report.py checks the committed docs/performance/results.json).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lab.model import MODES

T = TypeVar("T")
_MISFIT = object()  # what _fit answers for a value that is not of the kind asked for


def _fit(kind: Any, value: Any) -> Any:
    """value read as the type `kind` (a field's annotation), or _MISFIT."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return next((got for got in (_fit(option, value) for option in args) if got is not _MISFIT), _MISFIT)
    if kind is type(None) or kind is Any:
        return value if value is None or kind is Any else _MISFIT
    if origin is list:
        items = (_fit(args[0], v) for v in value) if isinstance(value, list) else None
        return _MISFIT if items is None else [v for v in items if v is not _MISFIT]
    if origin is dict:
        pairs = ((str(k), _fit(args[1], v)) for k, v in value.items()) if isinstance(value, dict) else None
        return _MISFIT if pairs is None else {k: v for k, v in pairs if v is not _MISFIT}
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return load(kind, value) if isinstance(value, dict) else _MISFIT
    if kind is float:  # an int stays an int: what was read is written back as it was
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return value if number and not math.isnan(value) else _MISFIT
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISFIT
    return value if isinstance(value, kind) else _MISFIT  # str, bool


def _read(kind: Any, value: Any) -> Any:
    """value as `kind`; what does not fit is None, an empty list or dict, or an empty record."""
    got = _fit(kind, value)
    if got is not _MISFIT:
        return got
    if type(None) in typing.get_args(kind):
        return None
    origin = typing.get_origin(kind)
    return [] if origin is list else {} if origin is dict else load(kind, {})


def load(kind: type[T], data: Any) -> T:
    """A record of type `kind` from a JSON object (any value: see the module's docstring)."""
    data = data if isinstance(data, dict) else {}
    hints = typing.get_type_hints(kind)
    return kind(**{f.name: _read(hints[f.name], data.get(f.name)) for f in dataclasses.fields(kind)})  # type: ignore[arg-type]


# --- the records, field by field the JSON objects' keys -------------------------------------

@dataclass(frozen=True)
class CapsRow:
    """The receiver's caps a point ran with (lab.model.Caps' first two)."""

    pool_limit: int | None = None
    threads: int | None = None


@dataclass(frozen=True)
class Burst:
    """One burst of N against one receiver (bench.bursts), or a skipped one."""

    label: str | None = None
    mode: str | None = None
    n: int | None = None
    delay: float | None = None
    warm: bool | None = None
    caps: CapsRow | None = None
    status: str | None = None  # "ok" or "skipped"
    reason: str | None = None  # why skipped
    makespan: float | None = None
    model: float | None = None  # the model's makespan
    completion_times: list[float] | None = None
    model_times: list[float] | None = None
    failed: int | None = None
    loop_cpu: float | None = None  # CPU seconds of the receiver's event-loop thread over the burst (local receivers)
    loop_seconds: float | None = None  # the seconds loop_cpu was read over: the sender's whole run
    # A warm burst's loop CPU seconds a second while no request came, read just before it: the
    # loop's own ticks (the culprit sampler, the pools' probes), which cost whether requests come or not
    loop_idle: float | None = None


@dataclass(frozen=True)
class Summary:
    """A run at a steady rate, measured or modelled (bench.rates.summarize)."""

    achieved: float | None = None
    window_rate: float | None = None
    p50: float | None = None
    p99: float | None = None
    dropped_share: float | None = None


@dataclass(frozen=True)
class Rate(Summary):
    """One open-loop run at a fraction of a mode's capacity (bench.rates): its Summary measured,
    the schedule and counts that made it, and `model`, the same Summary modelled."""

    mode: str | None = None
    fraction: float | None = None
    offered: float | None = None
    capacity: float | None = None
    duration: float | None = None
    max_in_flight: int | None = None
    arrivals: str | None = None
    seed: int | None = None
    sent: int | None = None
    ok: int | None = None
    errors: int | None = None
    dropped: int | None = None
    late: int | None = None
    hdr: dict[str, float | None] | None = None  # the sender's HDR histogram summary
    model: Summary | None = None  # the model replaying the same schedule

    @property
    def fraction_of_capacity(self) -> float | None:
        if self.fraction is not None:
            return self.fraction
        return self.offered / self.capacity if self.offered is not None and self.capacity else None

    @property
    def dropped_of_scheduled(self) -> float | None:
        """Dropped requests as a share of all scheduled: the sender counts a dropped one apart from `sent`."""
        if self.dropped is None or self.sent is None or self.sent + self.dropped == 0:
            return None
        return self.dropped / (self.sent + self.dropped)


@dataclass(frozen=True)
class WorkersSize:
    """The bursts of one N against one workers configuration."""

    model: float | None = None
    makespans: list[float] = field(default_factory=list)
    median: float | None = None
    even_share: float | None = None  # sync: the share of bursts spread evenly over the workers
    loads: list[list[int] | None] = field(default_factory=list)  # sync: each burst's spread, busiest first


@dataclass(frozen=True)
class Work:
    """One case of the work sweep (bench.work): c of work a request, a burst and a run at twice the capacity."""

    label: str | None = None
    mode: str | None = None
    cpu_ms: float | None = None  # c, RECEIVER_CPU_MS
    processes: int | None = None  # P, RECEIVER_CPU_PROCESSES
    cores: int | None = None  # the cores the receiver ran on (its /info): P' = min(P, cores)
    threads: int | None = None  # T
    pinned: bool | None = None  # to the server core (the pooled case is not: its processes need the cores)
    burst: Burst | None = None
    rate: Rate | None = None
    # The cores each process kept busy over the rate run's window (bench.work.PROCESSES: receiver,
    # pool, upstream, sender), in CPU seconds a second; None: not measured
    busy: dict[str, float] | None = None
    busy_seconds: float | None = None  # the seconds `busy` was read over: the run, its drain included


@dataclass(frozen=True)
class Floor:
    """A burst of the async-scale N against a server that is not the receiver (bench.floors), after a warm one."""

    label: str | None = None
    module: str | None = None  # the server: python -m <module>
    n: int | None = None
    delay: float | None = None
    makespan: float | None = None
    cpu: float | None = None  # the server process's CPU seconds over the burst


@dataclass(frozen=True)
class Memory:
    main_mb: float | None = None
    workers_mb: list[float] = field(default_factory=list)
    total_mb: float | None = None
    pss_total_mb: float | None = None


@dataclass(frozen=True)
class Workers:
    """One configuration of the workers experiment (bench.workers)."""

    label: str | None = None
    mode: str | None = None
    workers: int | None = None
    accept: str | None = None
    delay: float | None = None
    sizes: dict[str, WorkersSize] = field(default_factory=dict)  # by N
    memory: Memory | None = None


@dataclass(frozen=True)
class Throughput:
    """What a server did under wrk: requests per second, latency, and the CPU it used for them."""

    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    server_cpu: float | None = None  # the share of its core the server used
    cpu_us: float | None = None  # its CPU time per request


@dataclass(frozen=True)
class WrkRound(Throughput):
    """One wrk round against one server (bench.passthrough.parse_wrk, and the server's CPU)."""

    requests: int | None = None
    non_2xx: int | None = None
    socket_errors: int | None = None


@dataclass(frozen=True)
class Server(Throughput):
    """One pass-through configuration: medians of its rounds, and its ratios to the references."""

    rounds: list[WrkRound] = field(default_factory=list)
    vs: dict[str, float | None] = field(default_factory=dict)
    vs_cpu: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Pair:
    """Two servers on the server core at once: a's throughput over b's at the same CPU."""

    a: str | None = None
    b: str | None = None
    ratio: float | None = None  # the median of the rounds'
    rounds: list[float] = field(default_factory=list)
    cpu_us: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Load:
    """How a throughput experiment loaded its servers: rounds of `duration` s over `connections`."""

    duration: float | None = None
    rounds: int | None = None
    connections: int | None = None


@dataclass(frozen=True)
class Passthrough(Load):
    configs: dict[str, Server] = field(default_factory=dict)
    paired: dict[str, Pair] = field(default_factory=dict)
    cores: dict[str, int] = field(default_factory=dict)
    wrk: str | None = None


@dataclass(frozen=True)
class Tool:
    rps: float | None = None  # the median of the rounds
    rounds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Loadgen(Load):
    endpoint: str | None = None
    server_cpus: list[int] | None = None
    results: dict[str, Tool] = field(default_factory=dict)


@dataclass(frozen=True)
class Machine:
    cpus: int | None = None
    cpu_model: str | None = None
    python: str | None = None
    platform: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)
    wrk: str | None = None
    git: str | None = None
    pinning: dict[str, list[int]] | None = None


@dataclass(frozen=True)
class Timing:
    seconds: float | None = None
    rounds: int | None = None


@dataclass(frozen=True)
class Knobs:
    delay: float | None = None
    modes: list[str] = field(default_factory=list)
    burst_sizes: list[int] = field(default_factory=list)
    max_makespan: float | None = None
    rate_fractions: list[float] = field(default_factory=list)
    rate_duration: float | None = None
    arrivals: str | None = None
    seed: int | None = None
    backlog_seconds: float | None = None
    caps: CapsRow | None = None
    passthrough: Timing | None = None
    loadgen: Timing | None = None
    workers_repeats: int | None = None
    targets: str | list[str] | None = None  # "local", or the receivers' URLs


@dataclass(frozen=True)
class Goal:
    """One goal (bench.goals): passed None means not measured in this run."""

    group: str | None
    name: str | None
    target: str | None
    measured: str | None
    value: float | None
    passed: bool | None
    detail: str | None = ""


@dataclass(frozen=True)
class Results:
    version: int | None = None
    profile: str | None = None
    started: str | None = None
    machine: Machine = field(default_factory=Machine)
    knobs: Knobs = field(default_factory=Knobs)
    bursts: list[Burst] = field(default_factory=list)
    rates: list[Rate] = field(default_factory=list)
    workers: list[Workers] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)
    floors: list[Floor] = field(default_factory=list)
    passthrough: Passthrough | None = None
    loadgen: Loadgen | None = None
    seconds: float | None = None
    goals: list[Goal] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any) -> Results:
        return load(cls, data)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def burst_grid(self) -> tuple[list[str], list[int], dict[tuple[str, int], Burst]]:
        """Burst labels (first-seen order), burst sizes (ascending) and each (label, N)'s burst."""
        cells: dict[tuple[str, int], Burst] = {}
        for burst in self.bursts:
            if burst.n is not None:
                cells.setdefault((burst.label or burst.mode or "?", burst.n), burst)
        return list(dict.fromkeys(label for label, _ in cells)), sorted({n for _, n in cells}), cells

    def label_modes(self) -> dict[str, str | None]:
        """Each burst label's mode (of its first burst), in burst_grid()'s order of labels."""
        modes: dict[str, str | None] = {}
        for (label, _), burst in self.burst_grid()[2].items():
            modes.setdefault(label, burst.mode)
        return modes

    def rates_by_mode(self) -> dict[str, list[Rate]]:
        """The rate runs of each mode (lab.model's order first), by fraction of capacity."""
        seen = list(dict.fromkeys(r.mode or "?" for r in self.rates))
        order = [m for m in MODES if m in seen] + [m for m in seen if m not in MODES]
        return {mode: sorted((r for r in self.rates if (r.mode or "?") == mode),
                             key=lambda r: (r.fraction_of_capacity is None, r.fraction_of_capacity or 0.0))
                for mode in order}
