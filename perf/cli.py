"""`hpbroker perf`: load the broker (or any Kafka-protocol broker) and measure it.

`produce`, `consume` and `e2e` drive an existing broker; `nullsink` serves a do-nothing Kafka endpoint that
measures the harness's own ceiling; `stalls` measures what the machine itself takes from a busy core;
`suite` starts a broker itself, runs the standard workloads W1-W6 and appends the results to
perf/RESULTS.md; `compare` starts two brokers and runs one workload against each in turn.
"""

from __future__ import annotations

import json
import sys

import click


def _common(f):
    f = click.option("--connections", type=int, default=1, show_default=True,
                     help="Connections per process and broker (native client), partitions spread over them.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")(f)
    f = click.option("--time-limit", type=float, default=600.0, show_default=True,
                     help="Stop after this many seconds even if not every record was acknowledged.")(f)
    f = click.option("--client", type=click.Choice(["native", "confluent"]), default="native", show_default=True,
                     help="native: the harness's own pipelined client; confluent: confluent-kafka (librdkafka).")(f)
    f = click.option("--topic", required=True)(f)
    f = click.option("--bootstrap", required=True, metavar="HOST:PORT")(f)
    return f


def _produce_options(f):
    f = click.option("--interpreted-loop", is_flag=True,
                     help="At a fixed rate, send from the interpreted loop (the compiled loop's oracle) instead "
                          "of the compiled one: what the generator's own CPU costs the broker it shares cores "
                          "with.")(f)
    f = click.option("--idempotent", is_flag=True,
                     help="An idempotent producer: a producer id and sequence numbers in every batch (confluent: "
                          "enable.idempotence). Needs --acks all and --inflight 5 or less, as Kafka's idempotent "
                          "producer does; the native client runs it at max rate only.")(f)
    f = click.option("--inflight", type=int, default=8, show_default=True,
                     help="Requests outstanding per connection.")(f)
    f = click.option("--rate", type=float, default=0.0, help="Records/s over all producers (default: max).")(f)
    f = click.option("--linger-ms", type=float, default=0.0, show_default=True)(f)
    f = click.option("--batch-size", type=int, default=65536, show_default=True,
                     help="Bytes of records per partition batch (Kafka's batch.size).")(f)
    f = click.option("--producers", type=int, default=1, show_default=True, help="Producer processes.")(f)
    f = click.option("--acks", type=click.Choice(["0", "1", "all", "-1"]), default="1", show_default=True)(f)
    f = click.option("--num-records", type=int, required=True)(f)
    f = click.option("--record-size", type=int, default=1024, show_default=True)(f)
    f = click.option("--partitions", type=int, default=8, show_default=True,
                     help="Partitions of the topic if it is created.")(f)
    return f


def _acks(value: str) -> int:
    return -1 if value in ("all", "-1") else int(value)


def _workload(**kwargs):
    """The Workload the options describe; a combination it refuses is a usage error."""
    from perf.runner import Workload

    try:
        return Workload(**kwargs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _guarded(run) -> dict:
    """Run a workload; a broker that cannot be reached or answers with an error exits 1 with one line."""
    from perf.wire import KafkaError

    try:
        return run()
    except (OSError, KafkaError) as exc:
        click.echo(f"hpbroker perf: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


def _emit(result: dict, as_json: bool) -> None:
    from perf.display import Progress, render_summary

    Progress(enabled=False).console.print(render_summary(result))
    if as_json:
        click.echo(json.dumps(result))
    if result["errors"] or not result["complete"]:
        sys.exit(1)


def _progress():
    from perf.display import Progress

    return Progress()


@click.group()
def perf():
    """Load generator and benchmark suite (Kafka protocol, any broker)."""


@perf.command()
@_common
@_produce_options
def produce(bootstrap, topic, client, connections, time_limit, as_json, partitions, record_size, num_records, acks,
            producers, batch_size, linger_ms, rate, inflight, idempotent, interpreted_loop):
    """Produce NUM_RECORDS records of RECORD_SIZE random bytes; throughput and produce-to-ack latency."""
    from perf.runner import run_produce

    w = _workload(bootstrap=bootstrap, topic=topic, num_records=num_records, record_size=record_size,
                  partitions=partitions, acks=_acks(acks), producers=producers, batch_size=batch_size,
                  linger_ms=linger_ms, rate=rate, inflight=inflight, client=client, time_limit=time_limit,
                  connections=connections, idempotent=idempotent, interpreted_loop=interpreted_loop)
    _emit(_guarded(lambda: run_produce(w, _progress())), as_json)


@perf.command()
@_common
@click.option("--num-records", type=int, required=True)
@click.option("--consumers", type=int, default=1, show_default=True, help="Consumer processes.")
@click.option("--discard-records", is_flag=True,
              help="Native client: read each batch's header, drop its body in the kernel (MSG_TRUNC) instead "
                   "of copying it out; measures what the broker serves without the consumer's copy.")
def consume(bootstrap, topic, client, connections, time_limit, as_json, num_records, consumers, discard_records):
    """Fetch NUM_RECORDS records from the start of TOPIC's partitions; throughput."""
    from perf.runner import run_consume

    w = _workload(bootstrap=bootstrap, topic=topic, num_records=num_records, consumers=consumers, client=client,
                  time_limit=time_limit, connections=connections, discard_records=discard_records)
    _emit(_guarded(lambda: run_consume(w, _progress())), as_json)


@perf.command()
@_common
@_produce_options
@click.option("--consumers", type=int, default=1, show_default=True)
def e2e(bootstrap, topic, client, connections, time_limit, as_json, partitions, record_size, num_records, acks,
        producers, batch_size, linger_ms, rate, inflight, idempotent, interpreted_loop, consumers):
    """Produce at a fixed --rate while consuming; latency from each record's scheduled send to its receipt."""
    from perf.runner import run_e2e

    if not rate:
        raise click.UsageError("e2e needs --rate")
    w = _workload(bootstrap=bootstrap, topic=topic, num_records=num_records, record_size=record_size,
                  partitions=partitions, acks=_acks(acks), producers=producers, consumers=consumers,
                  batch_size=batch_size, linger_ms=linger_ms, rate=rate, inflight=inflight, client=client,
                  time_limit=time_limit, connections=connections, idempotent=idempotent,
                  interpreted_loop=interpreted_loop)
    _emit(_guarded(lambda: run_e2e(w, _progress())), as_json)


@perf.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9092, show_default=True)
@click.option("--processes", type=int, default=2, show_default=True,
              help="Sink processes, each a broker on its own port (the first on --port) leading every Nth partition.")
@click.option("--partitions", type=int, default=8, show_default=True)
@click.option("--record-size", type=int, default=1024, show_default=True, help="Records it serves to Fetch.")
def nullsink(host, port, processes, partitions, record_size):
    """Serve a Kafka endpoint that acknowledges everything instantly (until Ctrl-C)."""
    import signal

    from perf.nullsink import NullSinkProcesses

    sink = NullSinkProcesses(host, port, processes, partitions, record_size).start()
    click.echo(f"null sink ready bootstrap={sink.bootstrap} processes={processes}", err=True)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # sigwait only receives blocked signals
    try:
        signal.sigwait(stop_signals)
    finally:
        sink.stop()


@perf.command()
@click.option("--seconds", type=click.FloatRange(0.05, 3600), default=10.0, show_default=True)
@click.option("--threshold-us", type=click.FloatRange(10, 1e6), default=500.0, show_default=True,
              help="A gap between two clock reads longer than this counts.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def stalls(seconds, threshold_us, as_json):
    """Spin a clock on every core: the time the machine itself takes from a process that never sleeps."""
    from perf.stalls import describe, measure, report

    cores = measure(seconds, threshold_us)
    click.echo(describe(cores, threshold_us))
    for c in cores:
        shown = ", ".join(f"at {s:.3f} s {g * 1e3:.2f} ms" for s, g in c.gaps[:40])
        click.echo(f"cpu{c.cpu}: {shown or 'no gaps'}{' ...' if len(c.gaps) > 40 else ''}")
    if as_json:
        click.echo(json.dumps(report(cores)))


@perf.command()
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Multiply every workload's record count (0.01 for a quick look).")
@click.option("--only", multiple=True, help="Run only these workloads (W1 ... W7, NS).")
@click.option("--results", type=click.Path(dir_okay=False), default="perf/RESULTS.md", show_default=True)
@click.option("--no-write", is_flag=True, help="Print the section instead of appending it.")
@click.option("--repeat", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Runs of each workload; a row reports the median one and the range.")
def suite(scale, only, results, no_write, repeat):
    """Start a broker in a temp dir, run W1-W6 (and the null-sink ceiling), append a dated section to RESULTS."""
    from perf.suite import run_suite

    section = run_suite(scale=scale, only=set(only), progress=_progress(), repeat=repeat)
    if no_write:
        click.echo(section)
    else:
        with open(results, "a") as f:
            f.write("\n" + section)
        click.echo(f"appended to {results}", err=True)


@perf.command()
@click.option("--workload", required=True, metavar="W1|W2|W3|W4|W7",
              help="The suite's workload to run (its first produce row).")
@click.option("--rounds", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Runs against each broker, alternating A B B A ...")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Multiply the workload's record count.")
@click.option("--a-set", "a_set", multiple=True, metavar="KEY=VALUE", help="A setting of broker A (repeatable).")
@click.option("--b-set", "b_set", multiple=True, metavar="KEY=VALUE", help="A setting of broker B (repeatable).")
@click.option("--a-source", type=click.Path(file_okay=False, exists=True), default=None,
              help="Run broker A from this source tree (default: the installed broker).")
@click.option("--b-source", type=click.Path(file_okay=False, exists=True), default=None,
              help="Run broker B from this source tree (default: the installed broker).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def compare(workload, rounds, scale, a_set, b_set, a_source, b_source, as_json):
    """Start two brokers in temp dirs and run a workload against each in turn; medians and B over A.

    The brokers differ in settings (--a-set/--b-set), in source tree (--a-source/--b-source), or both."""
    from perf.compare import BrokerDidNotStart, compare as run_compare, render
    from perf.suite import PRODUCE_WORKLOADS
    from tools.commands.common import parse_pairs

    workload = workload.upper()
    if workload not in PRODUCE_WORKLOADS:
        raise click.BadParameter(f"{workload!r} is not one of {', '.join(PRODUCE_WORKLOADS)}",
                                 param_hint="'--workload'")
    settings = {"A": dict(parse_pairs(a_set, "'--a-set'")), "B": dict(parse_pairs(b_set, "'--b-set'"))}
    try:
        result = _guarded(lambda: run_compare(workload, rounds=rounds, scale=scale, settings=settings,
                                              sources={"A": a_source, "B": b_source}, progress=_progress()))
    except BrokerDidNotStart as exc:
        click.echo(f"hpbroker perf compare: {exc}", err=True)
        sys.exit(1)
    click.echo(render(result))
    if as_json:
        click.echo(json.dumps(result))
    if result["errors"] or not result["complete"]:
        sys.exit(1)
