"""Warm-up: what the hot path loads lazily is built before a server process's first request."""

import logging

from guard import classifier, matcher
from metering import tokens
from spendplane import warmup


def test_warm_up_builds_the_guard_and_the_tokenizers():
    matcher.matcher.cache_clear()
    classifier.shipped_model.cache_clear()
    tokens._encoding.cache_clear()
    took = warmup.warm_up()
    assert set(took) == {"routes", "guard", "tokenizers", "prices"}
    assert matcher.matcher.cache_info().currsize == 1
    assert classifier.shipped_model.cache_info().currsize == 1
    assert tokens._encoding.cache_info().currsize == 2  # o200k_base and cl100k_base


def test_a_failing_step_is_logged_and_the_rest_still_run(monkeypatch, caplog):
    ran = []

    def broken():
        raise RuntimeError("price data missing")

    monkeypatch.setattr(warmup, "STEPS", {"broken": broken, "after": lambda: ran.append("after")})
    with caplog.at_level(logging.ERROR, logger="spendplane.warmup"):
        took = warmup.warm_up()
    assert ran == ["after"]
    assert set(took) == {"broken", "after"}
    assert "warm-up step broken failed" in caplog.text


def test_the_production_server_config_warms_up_each_worker_on_gevent(monkeypatch, tmp_path):
    import runpy

    monkeypatch.delenv("SPENDPLANE_WORKER_CLASS", raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # else the config makes one for the process
    config = runpy.run_path("spendplane/gunicorn.conf.py")
    assert config["worker_class"] == "spendplane.gevent_worker.GeventWorker"
    matcher.matcher.cache_clear()
    config["post_worker_init"](None)
    assert matcher.matcher.cache_info().currsize == 1


def test_the_production_server_config_raises_the_collectors_threshold(monkeypatch, tmp_path):
    import gc
    import runpy

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    before = gc.get_threshold()
    try:
        config = runpy.run_path("spendplane/gunicorn.conf.py")
        config["post_worker_init"](None)
        assert gc.get_threshold() == (50_000, 10, 10)
        monkeypatch.setenv("SPENDPLANE_GC_THRESHOLD", "700,10,10")
        config = runpy.run_path("spendplane/gunicorn.conf.py")
        config["post_worker_init"](None)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)
