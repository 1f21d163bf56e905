"""`hpbroker acl ...`: add, list and remove access control lists (what kafka-acls.sh does).

The broker enforces them when authorizer.class.name is set; without it every ACL request is answered
SECURITY_DISABLED, which the commands report like any other Kafka error.
"""

from __future__ import annotations

import click

from broker.security import acl
from tools.client import check
from tools.commands.common import EXIT_CODES_HELP, client_command, emit
from tools.commands.render import table

DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31


@click.group(epilog=EXIT_CODES_HELP)
def acl_group():
    """Manage access control lists.

    An ACL lets (or, with --deny, forbids) a principal such as User:alice do an operation on a topic, a
    group or the cluster, from any host or one address. Deny wins over allow; READ, WRITE, DELETE and
    ALTER include DESCRIBE. Users named in the broker's super.users may do everything.
    """


def _resources(topics, groups, cluster: bool) -> list[tuple[int, str]]:
    return ([(acl.TOPIC, t) for t in topics] + [(acl.GROUP, g) for g in groups]
            + ([(acl.CLUSTER, acl.CLUSTER_NAME)] if cluster else []))


def _rows(bindings: list[dict]) -> list[dict]:
    return [{"resource_type": acl.name_of(acl.RESOURCE_TYPES, b["resource_type"]), "resource_name": b["resource_name"],
             "pattern": acl.name_of(acl.PATTERN_TYPES, b["pattern_type"]), "principal": b["principal"],
             "host": b["host"], "operation": acl.name_of(acl.OPERATIONS, b["operation"]),
             "permission": acl.name_of(acl.PERMISSIONS, b["permission_type"])} for b in bindings]


def _render(rows: list[dict]) -> str:
    return table(["RESOURCE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION", "PERMISSION"],
                 [[r["resource_type"], r["resource_name"], r["pattern"], r["principal"], r["host"], r["operation"],
                   r["permission"]] for r in rows])


def _resource_options(f):
    f = click.option("--cluster", is_flag=True, help="The cluster itself (topic creation, ACL changes, ...).")(f)
    f = click.option("--group", "groups", multiple=True, metavar="NAME", help="A consumer group (repeatable).")(f)
    f = click.option("--topic", "topics", multiple=True, metavar="NAME", help="A topic (repeatable).")(f)
    return f


@acl_group.command("add")
@client_command
@_resource_options
@click.option("--principal", "principals", multiple=True, required=True, metavar="TYPE:NAME",
              help="Who: User:alice, User:CN=client,O=Example for a certificate, User:* for everyone (repeatable).")
@click.option("--operation", "operations", multiple=True,
              type=click.Choice([k for k in acl.OPERATIONS], case_sensitive=False),
              help="What (repeatable).")
@click.option("--producer", is_flag=True,
              help="What a producer needs: WRITE, DESCRIBE and CREATE on each --topic (as kafka-acls --producer).")
@click.option("--consumer", is_flag=True,
              help="What a consumer needs: READ and DESCRIBE on each --topic, READ on each --group.")
@click.option("--host", default="*", show_default=True, help="The client address it applies to.")
@click.option("--prefixed", is_flag=True, help="Names are prefixes: the ACL covers every name starting with them.")
@click.option("--deny", is_flag=True, help="Forbid instead of allow.")
def acl_add(client, fmt, topics, groups, cluster, principals, operations, producer, consumer, host, prefixed, deny):
    """Add ACLs: every principal gets every operation on every resource named."""
    resources = _resources(topics, groups, cluster)
    if not resources:
        raise click.UsageError("name at least one --topic, --group or --cluster")
    if not (operations or producer or consumer):
        raise click.UsageError("name an --operation, or use --producer or --consumer")
    if (producer or consumer) and not topics or consumer and not groups:
        raise click.UsageError("--producer needs --topic; --consumer needs --topic and --group")
    wanted = [(rtype, name, acl.OPERATIONS[op.lower()]) for rtype, name in resources for op in operations]
    if producer:
        wanted += [(acl.TOPIC, t, op) for t in topics for op in (acl.WRITE, acl.DESCRIBE, acl.CREATE)]
    if consumer:
        wanted += [(acl.TOPIC, t, op) for t in topics for op in (acl.READ, acl.DESCRIBE)]
        wanted += [(acl.GROUP, g, acl.READ) for g in groups]
    creations = [{"resource_type": rtype, "resource_name": name,
                  "resource_pattern_type": acl.PREFIXED if prefixed and rtype != acl.CLUSTER else acl.LITERAL,
                  "principal": p, "host": host, "operation": op,
                  "permission_type": acl.DENY if deny else acl.ALLOW}
                 for rtype, name, op in dict.fromkeys(wanted) for p in principals]
    reply = client.any.request(CREATE_ACLS, {"creations": creations})
    for c, r in zip(creations, reply["results"]):
        check(r["error_code"], r.get("error_message"), f"ACL for {c['principal']} on {c['resource_name']}")
    rows = _rows([{**c, "pattern_type": c["resource_pattern_type"]} for c in creations])
    emit(fmt, rows, _render(rows))


def _filters(topics, groups, cluster, principal, operation, prefixed) -> list[dict]:
    resources = _resources(topics, groups, cluster) or [(acl.ANY, None)]
    return [{"resource_type_filter": rtype, "resource_name_filter": name,
             "pattern_type_filter": acl.ANY if name is None else acl.PREFIXED if prefixed else acl.LITERAL,
             "principal_filter": principal, "host_filter": None,
             "operation": acl.OPERATIONS[operation.lower()] if operation else acl.ANY,
             "permission_type": acl.ANY} for rtype, name in resources]


_FILTER_HELP = "Only ACLs of this principal."


@acl_group.command("list")
@client_command
@_resource_options
@click.option("--principal", default=None, metavar="TYPE:NAME", help=_FILTER_HELP)
@click.option("--prefixed", is_flag=True, help="The names given are prefixes of prefixed ACLs.")
def acl_list(client, fmt, topics, groups, cluster, principal, prefixed):
    """List ACLs: all of them, or those on the resources and of the principal named."""
    rows = []
    for f in _filters(topics, groups, cluster, principal, None, prefixed):
        reply = client.any.request(DESCRIBE_ACLS, f)
        check(reply["error_code"], reply.get("error_message"), "list ACLs")
        rows += _rows([{"resource_type": r["resource_type"], "resource_name": r["resource_name"],
                        "pattern_type": r["pattern_type"], **a} for r in reply["resources"] for a in r["acls"]])
    emit(fmt, rows, _render(rows))


@acl_group.command("remove")
@client_command
@_resource_options
@click.option("--principal", default=None, metavar="TYPE:NAME", help=_FILTER_HELP)
@click.option("--operation", default=None, type=click.Choice([k for k in acl.OPERATIONS], case_sensitive=False),
              help="Only ACLs of this operation.")
@click.option("--prefixed", is_flag=True, help="The names given are prefixes of prefixed ACLs.")
def acl_remove(client, fmt, topics, groups, cluster, principal, operation, prefixed):
    """Remove the ACLs on the resources named (and of the principal or operation given); prints them."""
    if not (topics or groups or cluster or principal):
        raise click.UsageError("name a --principal or a resource (--topic, --group, --cluster)")
    reply = client.any.request(DELETE_ACLS, {"filters": _filters(topics, groups, cluster, principal, operation,
                                                                 prefixed)})
    rows = []
    for r in reply["filter_results"]:
        check(r["error_code"], r.get("error_message"), "remove ACLs")
        rows += _rows(r["matching_acls"])
    emit(fmt, rows, _render(rows))
