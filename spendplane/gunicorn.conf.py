"""Production server settings (`make serve`); every value can be overridden from the environment."""

import multiprocessing
import os

bind = os.environ.get("SPENDPLANE_BIND", "0.0.0.0:8000")
# gevent: a request waiting on a provider (seconds, or minutes for a stream) holds a greenlet, not
# a thread, so in-flight requests are bounded by CPU, not by a thread count; psycopg (3.1.14+),
# redis-py and urllib3 cooperate once gunicorn has monkey-patched the worker. Measured against
# gthread in bench/README.md (server model). "gthread" (with SPENDPLANE_THREADS) remains available.
worker_class = os.environ.get("SPENDPLANE_WORKER_CLASS", "gevent")
if worker_class == "gevent":
    # The stock gevent worker, but stopping closes idle keep-alive connections at once.
    worker_class = "spendplane.gevent_worker.GeventWorker"
# gevent: requests (open streams included) one worker holds at once; more wait in the listen queue.
worker_connections = int(os.environ.get("SPENDPLANE_WORKER_CONNECTIONS", "1000"))
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
# gthread only: threads per worker.
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


# The collector's first-generation threshold (Python's default is 700): a proxied request allocates
# thousands of objects, nearly all freed by reference counting, so at 700 the collector ran several
# times a request and reached the older generations (the whole heap) often enough to show at p99.
# Measured in bench/README.md: 50,000 took 3.8% off the workers' CPU and 28% off p99.
gc_threshold = tuple(int(n) for n in os.environ.get("SPENDPLANE_GC_THRESHOLD", "50000,10,10").split(","))


def post_worker_init(worker):
    import gc

    # The guard's matcher and model, the tokenizers and the price data, built before the first request.
    from spendplane.warmup import warm_up

    warm_up()
    gc.set_threshold(*gc_threshold)
