"""`hpbroker quota ...`: client quotas (KIP-546), as `kafka-configs --entity-type users|clients` manages them.

An entity is a user, a client id, or both; `--user-default` / `--client-id-default` name that type's default
(`<default>` in Kafka's tools). Describing with entity options shows exactly that entity, as kafka-configs does.
"""

from __future__ import annotations

import click

from broker.quotas import CLIENT_ID, KEYS, USER
from tools.client import check
from tools.commands.common import EXIT_CODES_HELP, client_command, emit
from tools.commands.render import table

DESCRIBE_CLIENT_QUOTAS, ALTER_CLIENT_QUOTAS = 48, 49
MATCH_EXACT, MATCH_DEFAULT = 0, 1


@click.group(epilog=EXIT_CODES_HELP)
def quota():
    """Manage client quotas.

    A quota limits the bytes per second a user or client id may produce (producer_byte_rate) or fetch
    (consumer_byte_rate), or the share of a core its requests may take (request_percentage: 100 is one
    core); a client over it is throttled. The most specific entity with a value applies (user
    and client id before user alone before client id alone; a name before its default). Changes apply to all
    brokers.
    """


def _entity_options(f):
    f = click.option("--client-id-default", is_flag=True, help="The default of every client id.")(f)
    f = click.option("--client-id", "client_id", metavar="NAME", help="A client id.")(f)
    f = click.option("--user-default", is_flag=True, help="The default of every user.")(f)
    f = click.option("--user", metavar="NAME", help="A user (the principal's name, without User:).")(f)
    return f


def _entity(user, user_default, client_id, client_id_default) -> list[tuple[str, str | None]]:
    """[(type, name)] from the options; name None is the type's default."""
    out = []
    for etype, name, default in ((USER, user, user_default), (CLIENT_ID, client_id, client_id_default)):
        if name is not None and default:
            raise click.UsageError(f"--{etype} and --{etype}-default name different entities; give one")
        if name is not None or default:
            out.append((etype, name))
    return out


def entity_text(entity: list[tuple[str, str | None]]) -> str:
    return ",".join(f"{t}={'<default>' if n is None else n}" for t, n in entity)


def _number(value: float):
    return int(value) if float(value).is_integer() else value


@quota.command("describe")
@client_command
@_entity_options
def quota_describe(client, fmt, user, user_default, client_id, client_id_default):
    """The stored quotas: of one entity, or every one when no entity is named."""
    entity = _entity(user, user_default, client_id, client_id_default)
    components = [{"entity_type": t, "match_type": MATCH_EXACT if n is not None else MATCH_DEFAULT, "match": n}
                  for t, n in entity]
    reply = client.any.request(DESCRIBE_CLIENT_QUOTAS, {"components": components, "strict": bool(entity)})
    check(reply["error_code"], reply.get("error_message"), "describe quotas")
    rows = [{"entity": {e["entity_type"]: e["entity_name"] for e in entry["entity"]},
             "quotas": {v["key"]: _number(v["value"]) for v in entry["values"]}} for entry in reply["entries"] or ()]
    emit(fmt, rows, table(["ENTITY", "QUOTAS"], [
        [entity_text(list(r["entity"].items())), " ".join(f"{k}={v}" for k, v in r["quotas"].items())]
        for r in rows]))


def _pairs(items: tuple[str, ...]) -> list[tuple[str, float]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError(item)
            out.append((key, float(value)))
        except ValueError:
            raise click.BadParameter(f"{item!r} is not KEY=NUMBER", param_hint="--add") from None
    return out


@quota.command("alter")
@client_command
@_entity_options
@click.option("--add", "adds", multiple=True, metavar="KEY=VALUE",
              help=f"Set a quota, bytes per second or percent of a core (repeatable); keys: {', '.join(KEYS)}.")
@click.option("--delete", "deletes", multiple=True, metavar="KEY", help="Remove a quota (repeatable).")
@click.option("--validate-only", is_flag=True, help="Have the broker check the change without storing it.")
def quota_alter(client, fmt, user, user_default, client_id, client_id_default, adds, deletes, validate_only):
    """Set or remove quotas of one entity."""
    entity = _entity(user, user_default, client_id, client_id_default)
    if not entity:
        raise click.UsageError("name an entity: --user NAME, --user-default, --client-id NAME, --client-id-default")
    if not adds and not deletes:
        raise click.UsageError("nothing to change: give --add KEY=VALUE or --delete KEY")
    ops = [{"key": k, "value": v, "remove": False} for k, v in _pairs(adds)]
    ops += [{"key": k, "value": 0.0, "remove": True} for k in deletes]
    body = {"entries": [{"entity": [{"entity_type": t, "entity_name": n} for t, n in entity], "ops": ops}],
            "validate_only": validate_only}
    reply = client.any.request(ALTER_CLIENT_QUOTAS, body)
    for r in reply["entries"]:
        check(r["error_code"], r.get("error_message"), f"quota {entity_text(entity)}")
    rows = [{"entity": dict(entity), "set": {k: _number(v) for k, v in _pairs(adds)}, "removed": list(deletes),
             "validate_only": validate_only}]
    changes = [f"{k}={_number(v)}" for k, v in _pairs(adds)] + [f"{k} removed" for k in deletes]
    verb = "would change" if validate_only else "changed"
    emit(fmt, rows, f"{entity_text(entity)} {verb}: {', '.join(changes)}")
