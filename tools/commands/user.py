"""`hpbroker user ...`: SCRAM users the broker stores (KIP-554), as `kafka-configs --entity-type users` manages them.

The password never leaves this process: the command salts and hashes it (PBKDF2, the mechanism's hash) and
sends the salted password, as Kafka's admin client does.
"""

from __future__ import annotations

import hashlib
import os

import click

from broker.security.sasl import MAX_SCRAM_ITERATIONS, SCRAM_HASHES, SCRAM_ITERATIONS, SCRAM_MECHANISM_CODES
from tools.client import check
from tools.commands.common import EXIT_CODES_HELP, client_command, emit
from tools.commands.render import table

DESCRIBE_USER_SCRAM_CREDENTIALS, ALTER_USER_SCRAM_CREDENTIALS = 50, 51
_CODES = {name: code for code, name in SCRAM_MECHANISM_CODES.items()}


@click.group(epilog=EXIT_CODES_HELP)
def user():
    """Manage SCRAM users.

    Clients on SASL listeners log in with SCRAM-SHA-256 or SCRAM-SHA-512 as the users stored here (and as
    those of the broker's sasl.users setting). A change applies to the next login; connections already
    logged in stay.
    """


def _alter(client, deletions: list, upsertions: list) -> None:
    reply = client.any.request(ALTER_USER_SCRAM_CREDENTIALS, {"deletions": deletions, "upsertions": upsertions})
    for r in reply["results"]:
        check(r["error_code"], r.get("error_message"), f"user {r['user']}")


@user.command("set")
@client_command
@click.argument("name")
@click.option("--mechanism", "mechanisms", multiple=True, type=click.Choice(list(_CODES)),
              default=list(_CODES), show_default=True, help="Mechanisms to store a credential for (repeatable).")
@click.option("--iterations", type=click.IntRange(SCRAM_ITERATIONS, MAX_SCRAM_ITERATIONS),
              default=SCRAM_ITERATIONS, show_default=True, help="PBKDF2 iterations.")
@click.option("--password", envvar="HPBROKER_USER_PASSWORD", prompt=True, hide_input=True,
              confirmation_prompt=True, help="The new password (prompted when not given; env HPBROKER_USER_PASSWORD).")
def user_set(client, fmt, name, mechanisms, iterations, password):
    """Create user NAME or change its password."""
    upsertions = []
    for mech in dict.fromkeys(mechanisms):
        salt = os.urandom(32)
        salted = hashlib.pbkdf2_hmac(SCRAM_HASHES[mech], password.encode(), salt, iterations)
        upsertions.append({"name": name, "mechanism": _CODES[mech], "iterations": iterations, "salt": salt,
                           "salted_password": salted})
    _alter(client, [], upsertions)
    rows = [{"user": name, "mechanism": m, "iterations": iterations} for m in dict.fromkeys(mechanisms)]
    emit(fmt, rows, table(["USER", "MECHANISM", "ITERATIONS"], [[r["user"], r["mechanism"], r["iterations"]]
                                                               for r in rows]))


@user.command("list")
@client_command
@click.argument("names", nargs=-1)
def user_list(client, fmt, names):
    """The stored SCRAM users (or those named) and their mechanisms."""
    reply = client.any.request(DESCRIBE_USER_SCRAM_CREDENTIALS,
                               {"users": [{"name": n} for n in names] if names else None})
    check(reply["error_code"], reply.get("error_message"), "list users")
    rows = []
    for r in reply["results"]:
        check(r["error_code"], r.get("error_message"), f"user {r['user']}")
        rows += [{"user": r["user"], "mechanism": SCRAM_MECHANISM_CODES.get(i["mechanism"], str(i["mechanism"])),
                  "iterations": i["iterations"]} for i in r["credential_infos"]]
    emit(fmt, rows, table(["USER", "MECHANISM", "ITERATIONS"], [[r["user"], r["mechanism"], r["iterations"]]
                                                               for r in rows]))


@user.command("delete")
@client_command
@click.argument("name")
@click.option("--mechanism", "mechanisms", multiple=True, type=click.Choice(list(_CODES)),
              help="Only this mechanism's credential (repeatable); default: every one the user has.")
def user_delete(client, fmt, name, mechanisms):
    """Delete user NAME's SCRAM credentials."""
    if not mechanisms:
        reply = client.any.request(DESCRIBE_USER_SCRAM_CREDENTIALS, {"users": [{"name": name}]})
        check(reply["error_code"], reply.get("error_message"), "list users")
        r = reply["results"][0]
        check(r["error_code"], r.get("error_message"), f"user {name}")
        codes = [i["mechanism"] for i in r["credential_infos"]]
    else:
        codes = [_CODES[m] for m in dict.fromkeys(mechanisms)]
    _alter(client, [{"name": name, "mechanism": c} for c in codes], [])
    rows = [{"user": name, "mechanism": SCRAM_MECHANISM_CODES[c]} for c in codes]
    emit(fmt, rows, table(["USER", "MECHANISM"], [[r["user"], r["mechanism"]] for r in rows]))
