"""Operator commands, one module per noun (topic, group, cluster) plus produce/consume. They speak the
Kafka protocol through tools.client, so they work against any Kafka broker; rendering lives in
tools.commands.render and is pure."""
