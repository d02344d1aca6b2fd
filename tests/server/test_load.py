"""A bounded load test on loopback: 50 small jobs from 5 clients at once, none lost, all correct."""
from __future__ import annotations

import threading
import time

import numpy as np
from server_helpers import make_clip
from tiny_runner import TinyRunner, expected_for

CLIENTS, JOBS_PER_CLIENT = 5, 10


def test_fifty_jobs_from_five_clients_all_come_back_correct(start_server, connect):
    runner = TinyRunner(window=40)
    server = start_server(runner, max_queued=CLIENTS * JOBS_PER_CLIENT)
    results: dict[tuple[int, int], bool] = {}
    errors: list[BaseException] = []

    def client_work(c: int) -> None:
        try:
            client = connect(server, timeout=20)
            clips = [make_clip(60 + 7 * j, seed=100 * c + j) for j in range(JOBS_PER_CLIENT)]
            jobs = [client.submit(**clip, preset=("fast", "default", "best")[j % 3]) for j, clip in enumerate(clips)]
            for j, (job, clip) in enumerate(zip(jobs, clips)):
                result = job.wait(timeout=60)
                expected = expected_for(**clip, preset=("fast", "default", "best")[j % 3])
                assert job.id not in client._jobs  # the client forgets finished jobs too
                results[c, j] = all(np.array_equal(result.arrays[k], v) for k, v in expected.arrays().items()) and (
                    result.metrics["preset"] == expected.metrics["preset"]
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client_work, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - t0
    assert not errors, errors
    assert len(results) == CLIENTS * JOBS_PER_CLIENT and all(results.values())
    assert runner.calls == CLIENTS * JOBS_PER_CLIENT
    assert all(job.state == "done" for job in server.jobs.values())
    assert all(job.input is None for job in server.jobs.values())  # finished records hold no arrays
    assert elapsed < 60


def test_wire_overhead_of_a_3600_frame_clip_is_under_50_ms(start_server, connect):
    """Submit + result of a 2-minute clip at 30 fps costs < 50 ms beyond the runner itself
    (median of 5; scripts/bench_server.py measures it properly on a separate process)."""
    client = connect(start_server(TinyRunner(window=100_000)))
    clip = make_clip(3600, seed=7)
    client.submit(**clip).wait(timeout=30)  # warm-up
    overheads = []
    for _ in range(5):
        t0 = time.perf_counter()
        result = client.submit(**clip).wait(timeout=30)
        overheads.append(time.perf_counter() - t0 - result.metrics["runner_s"])
    assert np.array_equal(result.joints, expected_for(**clip).joints)
    assert float(np.median(overheads)) < 0.050, overheads
