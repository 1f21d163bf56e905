"""Two brokers side by side, one workload run against each in turn: a difference this machine's noise does not hide.

On a shared VM a workload's result moves by a third from one quarter hour to the next, more than most changes
to the broker are worth. Comparing a run today with a number recorded yesterday says little; comparing two
brokers measured in the same minutes says more. Both brokers run for the whole comparison (the one not under
load sleeps), each workload run goes against one of them, and the order alternates A B B A A B ..., so neither
side always runs first. The two sides differ in their settings (`num.io.threads=1` against 2), in the source
tree they run from (a change against main), or both.

Every run is on a fresh topic, deleted afterwards. Per side: each run's records/s, p50 and p99, the CPU time of
the broker's processes per record and that of the load processes (the other user of the same cores); the
medians; and B's median over A's.
"""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import replace

from perf import runner
from perf.suite import W3_BROKER, metered, produce_workload, run_produce, temp_broker

SIDES = ("A", "B")


class BrokerDidNotStart(RuntimeError):
    """A side's broker exited or never said ready (a setting it refuses, a broken source tree)."""


def order(rounds: int) -> list[str]:
    """Which side each run goes against: A B, then B A, and so on."""
    out: list[str] = []
    for r in range(rounds):
        out += list(SIDES) if r % 2 == 0 else list(reversed(SIDES))
    return out


def _summary(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs)
            for key in ("records_per_sec", "p50_ms", "p99_ms", "cpu_us_per_record", "client_us_per_record")}


def compare(workload: str, rounds: int = 3, scale: float = 1.0, settings: dict | None = None,
            sources: dict | None = None, progress=None) -> dict:
    """Run `workload` `rounds` times against each of two brokers, alternating.

    `settings` and `sources` map "A"/"B" to broker settings and to a source tree (None: the installed
    broker). A W3 broker fsyncs every append, as in the suite, under either side's settings."""
    settings = settings or {}
    sources = sources or {}
    with contextlib.ExitStack() as stack:
        brokers, server = {}, {}
        for side in SIDES:
            wanted = {**(W3_BROKER if workload == "W3" else {}), **settings.get(side, {})}
            try:
                b = stack.enter_context(temp_broker(settings=wanted, source=sources.get(side)))
            except RuntimeError as exc:  # it exited or never said ready: its log's tail says why
                raise BrokerDidNotStart(f"broker {side}: {exc}") from None
            brokers[side], server[side] = b, b.pids()
        result = {"workload": workload, "rounds": rounds, "scale": scale, "order": order(rounds),
                  "workers": {side: len(server[side]) - 1 for side in SIDES},
                  "settings": {side: dict(settings.get(side, {})) for side in SIDES},
                  "sources": {side: sources.get(side) for side in SIDES},
                  "runs": {side: [] for side in SIDES}}
        for i, side in enumerate(result["order"]):
            w = produce_workload(workload, brokers[side].bootstrap, scale)
            w = replace(w, topic=f"{w.topic}-{side.lower()}{i}")
            r = metered(run_produce, server[side])(w, progress)
            runner.delete_topic(w)
            result["runs"][side].append({
                "records": r["records"], "records_per_sec": r["records_per_sec"],
                "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"],
                "cpu_us_per_record": 1e6 * r["server_cpu_s"] / r["records"] if r["records"] else 0.0,
                "client_us_per_record": 1e6 * r["client_cpu_s"] / r["records"] if r["records"] else 0.0,
                "errors": r["errors"], "complete": r["complete"]})
    result["median"] = {side: _summary(result["runs"][side]) for side in SIDES}
    a, b = result["median"]["A"], result["median"]["B"]
    result["b_over_a"] = {k: (b[k] / a[k] if a[k] else None) for k in a}
    result["errors"] = sum(run["errors"] for side in SIDES for run in result["runs"][side])
    result["complete"] = all(run["complete"] for side in SIDES for run in result["runs"][side])
    return result


def render(result: dict) -> str:
    """A plain-text table: every run in the order it ran, then the medians and B over A."""
    rounds = result["rounds"]
    lines = [f"{result['workload']}, {rounds} round{'s' if rounds != 1 else ''}, scale {result['scale']:g}"]
    for side in SIDES:
        what = ", ".join(f"{k}={v}" for k, v in result["settings"][side].items()) or "default settings"
        where = result["sources"][side] or "installed broker"
        lines.append(f"  {side}: {what}; {where}; {result['workers'][side]} workers")
    lines.append(f"{'run':>4} {'side':>4} {'records/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/record':>14} "
                 f"{'client µs/rec':>14}")
    seen = {side: 0 for side in SIDES}
    for i, side in enumerate(result["order"]):
        run = result["runs"][side][seen[side]]
        seen[side] += 1
        lines.append(f"{i + 1:>4} {side:>4} {run['records_per_sec']:>12,.0f} {run['p50_ms']:>8.2f} "
                     f"{run['p99_ms']:>8.2f} {run['cpu_us_per_record']:>14.2f} {run['client_us_per_record']:>14.2f}")
    for side in SIDES:
        m = result["median"][side]
        lines.append(f"{'med':>4} {side:>4} {m['records_per_sec']:>12,.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} "
                     f"{m['cpu_us_per_record']:>14.2f} {m['client_us_per_record']:>14.2f}")
    r = result["b_over_a"]
    lines.append(f"{'B/A':>9} " + " ".join(
        f"{'' if r[k] is None else f'{r[k]:.3f}':>{width}}"
        for k, width in (("records_per_sec", 12), ("p50_ms", 8), ("p99_ms", 8), ("cpu_us_per_record", 14),
                         ("client_us_per_record", 14))))
    return "\n".join(lines)
