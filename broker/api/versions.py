"""ApiVersions: the first request of every client; it picks versions from what we list here."""

from __future__ import annotations

from netio.codec import ErrorCode


def handle_api_versions(dispatcher, conn, header, body: dict, slot) -> None:
    slot.reply({
        "error_code": int(ErrorCode.NONE),
        "api_keys": dispatcher.served_api_versions(),
        "throttle_time_ms": 0,
        "supported_features": [],
        "finalized_features_epoch": -1,
        "finalized_features": [],
        "zk_migration_ready": False,
    })


HANDLERS = {18: handle_api_versions}
