"""Production server settings (`make serve`); every value can be overridden from the environment."""

import multiprocessing
import os

bind = os.environ.get("SPENDPLANE_BIND", "0.0.0.0:8000")
# gthread: streams hold a thread, not a process, and a slow upstream does not block a worker.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("SPENDPLANE_THREADS", "32"))
# Streams can legitimately run for minutes.
timeout = int(os.environ.get("SPENDPLANE_WORKER_TIMEOUT", "600"))
graceful_timeout = 30
keepalive = 75
max_requests = int(os.environ.get("SPENDPLANE_MAX_REQUESTS", "0"))
accesslog = os.environ.get("SPENDPLANE_ACCESS_LOG") or None

# Prometheus samples from every worker, summed at /metrics.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="spendplane-metrics-")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    # Rows still queued for the ledger writer are written before the worker goes.
    from metering.ledger_writer import flush_all

    flush_all(timeout=float(os.environ.get("SPENDPLANE_LEDGER_FLUSH_SECONDS", "20")))
