"""`hpbroker start` end to end: real processes, real sockets, real Kafka clients."""

import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from tools.testing import BrokerProcess


def test_confluent_admin_list_topics(broker):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    md = admin.list_topics(timeout=10)
    assert list(md.brokers) == [0]
    b = md.brokers[0]
    assert (b.host, b.port) == ("127.0.0.1", broker.port)
    assert md.cluster_id and md.controller_id == 0


def test_kafka_python_describe_cluster(broker):
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        info = admin.describe_cluster()
    finally:
        admin.close()
    assert info["controller_id"] == 0
    assert [(b["broker_id"], b["host"], b["port"]) for b in info["brokers"]] == [(0, "127.0.0.1", broker.port)]
    assert info["cluster_id"]


def test_ready_line_and_clean_stop_on_sigterm_and_sigint(tmp_path):
    for sig in (signal.SIGTERM, signal.SIGINT):
        b = BrokerProcess(data_dir=str(tmp_path / f"d{sig}"), network_threads=2)
        b.start()
        ready = [l for l in b.output if "ready" in l]
        assert ready and "broker.id=0" in ready[0] and str(tmp_path / f"d{sig}") in ready[0]
        assert f"127.0.0.1:{b.port}" in ready[0]
        pids = b.child_pids()
        assert len(b.worker_pids("network")) == 2 and len(pids) == 3  # two network workers, one I/O worker
        b.proc.send_signal(sig)
        assert b.proc.wait(30) == 0
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_ipv6_listener_is_printed_and_served_as_clients_write_it(tmp_path):
    """The ready line, the metrics URL and the fixture's bootstrap bracket an IPv6 address, so each can be
    handed to a client as printed."""
    import urllib.request

    from confluent_kafka import Consumer, Producer

    b = BrokerProcess(data_dir=str(tmp_path / "d"), host="::1", settings={"metrics.listener": "[::1]:0"})
    b.start()
    try:
        ready = next(l for l in b.output if "hpbroker ready" in l)
        assert f"listeners=PLAINTEXT://[::1]:{b.port} " in ready and b.bootstrap == f"[::1]:{b.port}"
        assert b.metrics_url.startswith("http://[::1]:") and b.metrics_url.endswith("/metrics")
        page = urllib.request.urlopen(b.metrics_url, timeout=10).read().decode()
        assert f'listeners="PLAINTEXT://[::1]:{b.port}"' in page
        p = Producer({"bootstrap.servers": b.bootstrap})
        for i in range(10):
            p.produce("v6", str(i).encode())
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "v6", "auto.offset.reset": "earliest"})
        c.subscribe(["v6"])
        got, deadline = [], time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        c.close()
        assert sorted(got) == sorted(str(i).encode() for i in range(10))
    finally:
        assert b.stop() == 0


def test_port_in_use_fails_clearly(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        r = subprocess.run([sys.executable, "-m", "tools.cli", "start", "--set",
                            f"listeners=PLAINTEXT://127.0.0.1:{port}", "--set", f"log.dirs={tmp_path}",
                            "--set", "metrics.listener=none"], capture_output=True, text=True, timeout=60)
    finally:
        s.close()
    assert r.returncode == 1
    assert "address already in use" in r.stderr


def test_second_broker_on_same_port_fails(broker, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools.cli", "start", "--set",
                        f"listeners=PLAINTEXT://127.0.0.1:{broker.port}", "--set", f"log.dirs={tmp_path / 'x'}",
                        "--set", "metrics.listener=none"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "address already in use" in r.stderr


# Run as root, a process would write anywhere through CAP_DAC_OVERRIDE (and CAP_DAC_READ_SEARCH). This
# launcher drops both from the capability bounding set (and clears the ambient set) and then execs the real
# command, which thereby runs as root without them: ordinary permission bits apply to it like to any user.
# (Switching to another user instead is not an option where the interpreter lives under root's 0700 home.)
_DROP_DAC_CAPS = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
    if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
        sys.exit(f"cannot drop capability {cap}: {os.strerror(ctypes.get_errno())}")
libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
os.execv(sys.argv[1], sys.argv[1:])
"""


def _without_permission_bypass(cmd: list[str]) -> list[str]:
    return [sys.executable, "-c", _DROP_DAC_CAPS, *cmd] if os.geteuid() == 0 else cmd


def test_unwritable_data_dir(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(stat.S_IRUSR | stat.S_IXUSR)
    # The directory really is unwritable for the process about to run (this fails if the capabilities or
    # the mode did not take), so the broker's own check is what the second run exercises.
    probe = subprocess.run(_without_permission_bypass(
        [sys.executable, "-c", "import sys; open(sys.argv[1], 'wb')", str(d / "probe")]),
        capture_output=True, text=True, timeout=60)
    assert probe.returncode == 1 and "PermissionError" in probe.stderr, probe.stderr
    r = subprocess.run(_without_permission_bypass(
        [sys.executable, "-m", "tools.cli", "start", "--set", "listeners=PLAINTEXT://127.0.0.1:0",
         "--set", f"log.dirs={d}", "--set", "metrics.listener=none"]),
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert f"data directory {d} is not writable: Permission denied" in r.stderr, r.stderr
    assert list(d.iterdir()) == []


def test_data_dir_that_is_a_file_fails(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = subprocess.run([sys.executable, "-m", "tools.cli", "start", "--set", "listeners=PLAINTEXT://127.0.0.1:0",
                        "--set", f"log.dirs={f}", "--set", "metrics.listener=none"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not writable" in r.stderr and str(f) in r.stderr


@pytest.mark.parametrize("store", ["acls.json", "scram.json", "broker_configs.json"])
def test_a_damaged_controller_store_fails_the_start_and_names_it(tmp_path, store):
    data = tmp_path / "data"
    data.mkdir()
    (data / store).write_text("{not json")
    r = subprocess.run([sys.executable, "-m", "tools.cli", "start", "--set", "listeners=PLAINTEXT://127.0.0.1:0",
                        "--set", f"log.dirs={data}", "--set", "metrics.listener=none"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and str(data / store) in r.stderr and "not readable JSON" in r.stderr
    assert "Traceback" not in r.stderr


def test_worker_killed_is_restarted_and_serves(broker):
    from confluent_kafka.admin import AdminClient

    pid = broker.worker_pids("network")[0]
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 20
    while time.time() < deadline and broker.worker_pids("network")[0] == pid:
        time.sleep(0.1)
    assert broker.worker_pids("network")[0] != pid
    assert pid not in broker.child_pids()
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert list(md.brokers) == [0]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to tell one of them from all")
def test_worker_counts_default_to_the_cpus_the_broker_may_run_on(tmp_path):
    """Started on one CPU of several (as by `taskset -c` or a container's cpuset), the broker runs one
    network and one I/O worker, not one of each per CPU of the machine, and serves a client."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    cpu = min(os.sched_getaffinity(0))
    with BrokerProcess(data_dir=str(tmp_path / "data"), network_threads=None, io_threads=None, cpus={cpu}) as b:
        assert len(b.worker_pids("network")) == 1 and len(b.worker_pids("io")) == 1, b.log_tail()
        assert all(os.sched_getaffinity(pid) == {cpu} for pid in b.pids())
        p = Producer({"bootstrap.servers": b.bootstrap})
        for i in range(10):
            p.produce("pinned", str(i).encode(), partition=0)
        assert p.flush(20) == 0
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g", "enable.auto.commit": False})
        c.assign([TopicPartition("pinned", 0, 0)])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 10 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        c.close()
        assert got == [str(i).encode() for i in range(10)]


def test_a_broker_with_thousands_of_partitions_stops_cleanly_and_keeps_them(tmp_path):
    """SIGTERM with 2,000 partitions on one I/O worker: every log is flushed and checkpointed within the
    supervisor's stop deadline, so the stop is clean and the next start recovers nothing. Each partition's
    close used to rewrite the directory's shared checkpoint (2,000 rewrites of a 2,000-line file): the worker
    was killed at the deadline and the stop was unclean."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    data = str(tmp_path / "data")
    b = BrokerProcess(data_dir=data, settings={"log.segment.bytes": 1 << 20})
    b.start()
    try:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        for f in admin.create_topics([NewTopic(f"many{i}", 10, 1) for i in range(200)],
                                     operation_timeout=60).values():
            f.result(60)
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
        for i in range(200):
            for j in range(10):
                p.produce(f"many{i}", f"{i}-{j}".encode(), partition=j)
        assert p.flush(60) == 0
        assert b.stop(60) == 0
    finally:
        b.kill()
    assert any("stopped exit=0 clean=True" in line for line in b.output), b.log_tail()
    assert os.path.exists(os.path.join(data, ".kafka_cleanshutdown"))
    with open(os.path.join(data, "recovery-point-offset-checkpoint")) as f:
        points = {tuple(line.split()[:2]): int(line.split()[2]) for line in f.read().splitlines()[2:]}
    assert all(points[(f"many{i}", str(j))] == 1 for i in range(200) for j in range(10))
