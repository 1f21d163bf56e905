"""`hpbroker perf` end to end against a real broker: tiny runs, numbers read back from the --json line."""

import json
import subprocess
import sys

import pytest

from tests.perf import COMPILED


def perf(*args: str, timeout: float = 120) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "perf", *args, "--json"], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check(result: dict, records: int) -> None:
    assert result["records"] == result["records_counted"] == records
    assert result["errors"] == 0 and result["complete"]
    assert result["records_per_sec"] > 0 and result["mb_per_sec"] > 0
    lat = result["latency_ms"]
    assert set(lat) >= {"p50", "p99", "p999", "max"}
    assert lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"]


def partition_records(broker, topic: str, partitions: int) -> list[int]:
    """Records in each partition's log, read from the broker's segment files rather than through a client."""
    import glob
    import os

    import hotpath

    def written(path: str) -> bytes:
        """A segment is sized up front and sparse past what has been written: read up to the first hole."""
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, os.lseek(fd, 0, os.SEEK_HOLE), 0)
        finally:
            os.close(fd)

    held = []
    for p in range(partitions):
        files = sorted(glob.glob(f"{broker.data_dir}/{topic}-{p}/*.log"))
        held.append(hotpath.scan_batches(b"".join(written(f) for f in files)).records)
    return held


def test_produce_then_consume_every_record(broker):
    """Each consumer counts exactly the records its partitions hold: none counted twice, none missed."""
    produced = perf("produce", "--bootstrap", broker.bootstrap, "--topic", "cli", "--partitions", "3",
                    "--record-size", "200", "--num-records", "5000", "--producers", "2", "--batch-size", "4000",
                    "--connections", "2")
    check(produced, 5000)
    assert produced["avg_record_bytes"] == 200
    assert produced["mb_per_sec"] == pytest.approx(produced["records_per_sec"] * 200 / 1e6, rel=0.01)
    consumed = perf("consume", "--bootstrap", broker.bootstrap, "--topic", "cli", "--num-records", "5000",
                    "--consumers", "2", "--connections", "2")
    assert consumed["records_per_sec"] > 0
    discarded = perf("consume", "--bootstrap", broker.bootstrap, "--topic", "cli", "--num-records", "5000",
                     "--consumers", "2", "--discard-records")
    held = partition_records(broker, "cli", 3)
    assert sum(held) == 5000
    for r in (consumed, discarded):
        assert r["records_counted"] == 5000 and r["errors"] == 0 and r["complete"]
        assert sorted(p for proc in r["processes"] for p in proc["partitions"]) == [0, 1, 2]
        for proc in r["processes"]:
            assert proc["records"] == sum(held[p] for p in proc["partitions"]), r["processes"]
    assert discarded["discard_records"] and not consumed["discard_records"]


@pytest.mark.parametrize("loop", [pytest.param("compiled", marks=COMPILED), "interpreted"])
def test_acks_all_and_fixed_rate(broker, loop):
    """At 2000 records/s the last of 600 records is due 599/2000 s after the first, and the run lasts at
    least until it is acknowledged: records sent ahead of their due time would end it sooner. Either loop
    sends every record once: the partitions hold the 600, spread as the loop rotates over them."""
    topic = f"rated-{loop}"
    result = perf("produce", "--bootstrap", broker.bootstrap, "--topic", topic, "--record-size", "100",
                  "--num-records", "600", "--acks", "all", "--rate", "2000", "--batch-size", "1000",
                  "--partitions", "3", *(["--interpreted-loop"] if loop == "interpreted" else []))
    check(result, 600)
    assert result["acks"] == -1 and result["rate"] == 2000 and result["loop"] == loop
    held = partition_records(broker, topic, 3)
    assert sum(held) == 600 and min(held) > 0, held
    due = 599 / 2000
    assert due - 0.001 <= result["elapsed_s"] < 1.8 * due  # rounded to the ms; half the rate would take 2 * due
    assert result["records_per_sec"] <= 600 / due + 0.1


@pytest.mark.parametrize("loop", [pytest.param("compiled", marks=COMPILED), "interpreted"])
def test_e2e_latency_from_scheduled_send(broker, loop):
    """Every consumed record gives one latency, from the scheduled send time in its key; a record is due
    after the consumers started and consumed by the end of the run, so no latency exceeds the run. (A key
    written without the batch CRC computed again would be refused by the broker as CORRUPT_MESSAGE.)"""
    result = perf("e2e", "--bootstrap", broker.bootstrap, "--topic", f"e2e-{loop}", "--partitions", "2",
                  "--record-size", "64", "--num-records", "500", "--rate", "1000", "--batch-size", "640",
                  *(["--interpreted-loop"] if loop == "interpreted" else []))
    check(result, 500)
    assert result["produced"] == 500 and result["loop"] == loop
    assert result["latency_samples"] == 500
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["max"] < result["elapsed_s"] * 1000
    assert result["produce_latency_ms"]["max"] > 0


def test_confluent_client(broker):
    result = perf("produce", "--bootstrap", broker.bootstrap, "--topic", "conf", "--record-size", "100",
                  "--num-records", "2000", "--client", "confluent", "--linger-ms", "2")
    check(result, 2000)
    consumed = perf("consume", "--bootstrap", broker.bootstrap, "--topic", "conf", "--num-records", "2000",
                    "--client", "confluent")
    assert consumed["records_counted"] == 2000 and consumed["errors"] == 0 and consumed["complete"]


def test_confluent_client_at_a_fixed_rate_waits_without_spinning(broker):
    """Through confluent-kafka at 2000 records/s the run lasts until the last record is due, every record
    gives a latency, and the client sleeps between records instead of polling librdkafka with timeouts
    it rounds down to zero (which would keep a core busy for the whole run)."""
    result = perf("produce", "--bootstrap", broker.bootstrap, "--topic", "conf-rated", "--record-size", "100",
                  "--num-records", "2000", "--rate", "2000", "--client", "confluent")
    check(result, 2000)
    assert result["latency_samples"] == 2000
    assert result["elapsed_s"] >= 1999 / 2000 - 0.001
    assert result["client_cpu_s"] < 0.6 * result["elapsed_s"], result["client_cpu_s"]


@pytest.mark.parametrize("client,extra", [("native", ["--producers", "2"]), ("confluent", ["--linger-ms", "2"])])
def test_idempotent_producer(broker, client, extra):
    """--idempotent reaches the client: every batch in the log carries its producer's id and the sequences
    run on from batch to batch (the broker refuses any gap, which the run would count as errors)."""
    import glob

    import hotpath

    result = perf("produce", "--bootstrap", broker.bootstrap, "--topic", "idem", "--partitions", "4",
                  "--record-size", "100", "--num-records", "4000", "--client", client, "--batch-size", "2000",
                  "--acks", "all", "--inflight", "5", "--idempotent", *extra)
    check(result, 4000)
    pids = set()
    for part in range(4):
        data = b"".join(open(f, "rb").read() for f in sorted(glob.glob(f"{broker.data_dir}/idem-{part}/*.log")))
        res = hotpath.scan_batches(data)
        assert not data[res.valid_bytes:].strip(b"\0")  # the active segment's preallocated tail
        assert res.records == 1000 and res.count > 1
        assert len(set(res.producer_id.tolist())) == 1 and res.producer_id[0] >= 0
        pids.add(int(res.producer_id[0]))
        seqs, counts = res.base_sequence.tolist(), res.record_count.tolist()
        assert seqs[0] == 0 and all(seqs[i + 1] == seqs[i] + counts[i] for i in range(res.count - 1))
    assert len(pids) == (2 if client == "native" else 1)  # each producer process is a producer of its own


@pytest.mark.parametrize("args,message", [
    (["produce", "--idempotent"], "--acks all"),
    (["produce", "--idempotent", "--client", "confluent", "--acks", "all"], "at most 5"),
    (["produce", "--idempotent", "--acks", "all", "--inflight", "5", "--rate", "10"], "max rate only"),
    (["e2e", "--rate", "10", "--idempotent", "--acks", "all", "--inflight", "5"], "max rate only"),
    (["consume", "--discard-records", "--client", "confluent"], "needs the native client"),
    (["produce", "--interpreted-loop"], "needs --rate"),
    (["produce", "--interpreted-loop", "--rate", "10", "--client", "confluent"], "needs --rate"),
])
def test_options_a_client_cannot_honour_are_refused(args, message):
    """--idempotent takes what Kafka's idempotent producer needs (the native client: at max rate);
    --discard-records the native consumer; --interpreted-loop the native client at a fixed rate."""
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "perf", args[0], "--bootstrap", "127.0.0.1:1",
                           "--topic", "x", "--num-records", "1", *args[1:]], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_unreachable_broker_fails_with_a_message():
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "perf", "produce", "--bootstrap", "127.0.0.1:1",
                           "--topic", "x", "--num-records", "1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Connection refused" in proc.stderr + proc.stdout
