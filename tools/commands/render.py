"""Pure rendering: the plain dicts the commands collect (and print as JSON) turned into aligned text."""

from __future__ import annotations

import base64
import json


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def render_topic_list(topics: list[dict]) -> str:
    return table(["NAME", "PARTITIONS", "REPLICAS", "INTERNAL"],
                 [[t["name"], t["partitions"], t["replication_factor"], "yes" if t["internal"] else "no"]
                  for t in topics])


def render_topic(desc: dict) -> str:
    head = (f"NAME        {desc['name']}\nTOPIC ID    {desc.get('topic_id') or '-'}\n"
            f"INTERNAL    {'yes' if desc['internal'] else 'no'}\nPARTITIONS  {len(desc['partitions'])}\n")
    parts = table(["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK", "STATUS"],
                  [[p["partition"], p["leader"], p["leader_epoch"], ",".join(map(str, p["replicas"])),
                    ",".join(map(str, p["isr"])), p["log_start_offset"], p["high_watermark"], p["status"]]
                   for p in desc["partitions"]])
    configs = table(["CONFIG", "VALUE", "SOURCE"],
                    [[c["name"], c["value"], c["source"]] for c in desc["configs"]])
    return f"{head}\n{parts}\n\n{configs}"


def render_group_list(groups: list[dict]) -> str:
    return table(["GROUP", "PROTOCOL-TYPE", "STATE", "COORDINATOR"],
                 [[g["group"], g["protocol_type"] or "-", g["state"] or "-", g["coordinator"]] for g in groups])


def render_group(desc: dict) -> str:
    head = (f"GROUP        {desc['group']}\nCOORDINATOR  {desc['coordinator']}\nSTATE        {desc['state']}\n"
            f"PROTOCOL     {desc['protocol'] or '-'}\nMEMBERS      {len(desc['members'])}\n"
            f"TOTAL LAG    {desc['total_lag']}\n")
    members = table(["MEMBER", "CLIENT-ID", "HOST", "ASSIGNMENT"],
                    [[m["member_id"], m["client_id"], m["client_host"],
                      " ".join(f"{t}:{','.join(map(str, ps))}" for t, ps in m["assignment"].items()) or "-"]
                     for m in desc["members"]]) if desc["members"] else "(no active members)"
    offsets = table(["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER"],
                    [[o["topic"], o["partition"], o["committed_offset"], o["end_offset"], o["lag"], o["member"]]
                     for o in desc["offsets"]])
    return f"{head}\n{members}\n\n{offsets}"


def render_cluster(info: dict) -> str:
    brokers = table(["ID", "HOST", "PORT", "RACK", "CONTROLLER"],
                    [[b["id"], b["host"], b["port"], b["rack"], "*" if b["id"] == info["controller_id"] else ""]
                     for b in info["brokers"]])
    return (f"CLUSTER     {info['cluster_id'] or '-'}\nCONTROLLER  {info['controller_id']}\n"
            f"TOPICS      {info['topics']}\nPARTITIONS  {info['partitions']}\n\n{brokers}")


def render_partition_health(info: dict) -> str:
    """The under-replicated, offline and not-preferred-led partitions of `hpbroker cluster info`: a count each,
    then a table if any."""
    out = []
    for title, key in (("UNDER-REPLICATED PARTITIONS", "under_replicated_partitions"),
                       ("OFFLINE PARTITIONS", "offline_partitions"),
                       ("NOT LED BY THEIR PREFERRED REPLICA", "not_preferred_leader_partitions")):
        rows = info[key]
        out.append(f"{title}  {len(rows)}")
        if rows:
            out.append(table(["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"],
                             [[r["topic"], r["partition"], r["leader"], ",".join(map(str, r["replicas"])),
                               ",".join(map(str, r["isr"])) or "-"] for r in rows]) + "\n")
    return "\n".join(out).rstrip()


def render_elections(rows: list[dict]) -> str:
    """`hpbroker cluster elect-leaders`: a line per partition tried (RESULT: elected, or why not)."""
    if not rows:
        return "no partition needed an election"
    return table(["TOPIC", "PARTITION", "RESULT"],
                 [[r["topic"], r["partition"], r["error"] or "elected"] for r in rows])


def render_reassignments(rows: list[dict]) -> str:
    """`hpbroker cluster reassignments`: a line per partition being moved."""
    if not rows:
        return "no reassignment in progress"
    def ids(xs: list[int]) -> str:
        return ",".join(map(str, xs)) or "-"

    return table(["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"],
                 [[r["topic"], r["partition"], ids(r["replicas"]), ids(r["adding"]), ids(r["removing"])] for r in rows])


def render_offsets(rows: list[dict]) -> str:
    return table(["TOPIC", "PARTITION", "OLD-OFFSET", "NEW-OFFSET"],
                 [[r["topic"], r["partition"], r["old_offset"], r["new_offset"]] for r in rows])


def text_of(data: bytes | None) -> str | None:
    if data is None:
        return None
    return data.decode("utf-8", "backslashreplace")


def record_dict(topic: str, partition: int, rec) -> dict:
    """JSON-ready record: values as UTF-8 text when they are, else base64 under *_b64."""
    out = {"topic": topic, "partition": partition, "offset": rec.offset, "timestamp": rec.timestamp,
           "timestamp_type": rec.timestamp_type}
    for name, data in (("key", rec.key), ("value", rec.value)):
        if data is None:
            out[name] = None
            continue
        try:
            out[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            out[name + "_b64"] = base64.b64encode(data).decode()
    out["headers"] = {k: text_of(v) for k, v in rec.headers}
    return out


def render_record(topic: str, partition: int, rec, fields: tuple[str, ...], fmt: str) -> str:
    """One output line: JSON object, or tab-separated chosen fields followed by the value."""
    if fmt == "json":
        return json.dumps(record_dict(topic, partition, rec))
    parts = []
    for f in fields:
        if f == "partition":
            parts.append(f"partition={partition}")
        elif f == "offset":
            parts.append(f"offset={rec.offset}")
        elif f == "timestamp":
            parts.append(f"timestamp={rec.timestamp}")
        elif f == "key":
            parts.append(f"key={text_of(rec.key) if rec.key is not None else ''}")
        elif f == "headers":
            parts.append("headers=" + ",".join(f"{k}={text_of(v) or ''}" for k, v in rec.headers))
    parts.append(text_of(rec.value) or "")
    return "\t".join(parts)
