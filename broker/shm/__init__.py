"""Shared memory between the supervisor, network workers and I/O workers.

``layout`` documents every shared byte; ``region`` maps named segments; ``ring`` carries requests
and completions; ``partitions`` publishes per-partition offsets; ``doorbell`` and ``barrier`` make
sleeping and waking correct.
"""
