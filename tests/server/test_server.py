"""Jobs over real loopback sockets: round trips, queueing, cancel, ping while busy, failures."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from server_helpers import make_clip
from tiny_runner import TinyRunner, expected_for, failing

from dreamor.server import protocol
from dreamor.server.client import BackendError, BackendGone, Client, JobCancelled, JobFailed, Partial, Progress, Result


def assert_result_is(result: Result, clip: dict, **options) -> None:
    expected = expected_for(**clip, **options)
    for name, arr in expected.arrays().items():
        assert result.arrays[name].shape == arr.shape, name
        assert np.array_equal(result.arrays[name], arr), name
    assert result.metrics["mean_change"] == expected.metrics["mean_change"]


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_submit_progress_partials_result_round_trip(start_server, connect):
    server = start_server(TinyRunner(window=50, step_s=0.06))
    client = connect(server)
    clip = make_clip(230, seed=1)
    job = client.submit(**clip, preset="fast", keep_visible=False)
    assert job.position == 0 and job.frames == 230 and job.device == "cpu"
    events = list(job.events(timeout=30))
    assert isinstance(events[-1], Result) and job.state == "done"
    assert_result_is(events[-1], clip, preset="fast", keep_visible=False)
    # the tiny runner's doubt is 0.1 m on the hidden joints: the doubtful stretch is exactly the hidden frames 76..152
    assert events[-1].metrics | {"mean_change": 0, "runner_s": 0} == {
        "runner_s": 0, "frames": 230, "fps": 30.0, "preset": "fast", "keep_visible": False, "device": "cpu",
        "mean_change": 0, "doubt_from": 230 // 3, "doubt_to": 2 * 230 // 3 - 1, "doubt_max_cm": 10.0}
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[0].stage == "started" and progress[-1].fraction == 1.0
    assert [p.fraction for p in progress if p.stage == "smooth"] == pytest.approx([50 / 230, 100 / 230, 150 / 230, 200 / 230, 1.0])
    partials = [e for e in events if isinstance(e, Partial)]
    assert [(p.start, p.stop) for p in partials] == [(0, 50), (50, 100), (100, 150), (150, 200), (200, 230)]
    for name in protocol.OUTPUT_ARRAYS:  # the windows are exactly the final result
        assert np.array_equal(np.concatenate([p.arrays[name] for p in partials]), events[-1].arrays[name])
    assert job.poll() == []  # nothing after the result


def test_fast_progress_is_coalesced_but_the_latest_always_arrives(start_server, connect):
    def chatty(job, sink, should_stop):
        for i in range(1, 5001):
            sink.progress("optimise", i / 5000, {"e": float(i)})
        time.sleep(0.4)
        return TinyRunner()(job, sink, should_stop)

    client = connect(start_server(chatty))
    events = list(client.submit(**make_clip(20)).events(timeout=10))
    optimise = [e for e in events if isinstance(e, Progress) and e.stage == "optimise"]
    assert 1 <= len(optimise) < 100
    assert optimise[-1].fraction == 1.0 and optimise[-1].energies == {"e": 5000.0}
    assert isinstance(events[-1], Result)


def test_hello_names_protocol_devices_models_and_limits(start_server, connect):
    server = start_server()
    welcome = connect(server).hello()
    assert welcome["protocol"] == 1 and welcome["devices"] == ["cpu"]
    assert welcome["models"]["cpu"]["model"] == "tiny-smoother"
    assert welcome["limits"]["max_clip_frames"] == protocol.MAX_CLIP_FRAMES


def test_progress_arrives_at_least_every_second_even_from_a_silent_runner(start_server, connect):
    server = start_server(TinyRunner(silent_s=2.5))
    client = connect(server)
    job = client.submit(**make_clip(20))
    arrivals = [time.monotonic()]
    while not job.finished:
        arrivals += [time.monotonic()] * len(job.poll())
        client._receive(0.05)
    gaps = np.diff(arrivals)
    assert len(arrivals) >= 5 and gaps.max() < 1.0, gaps


def test_jobs_queue_one_at_a_time_and_report_their_position(start_server, connect):
    runner = TinyRunner(window=32, step_s=0.1)
    server = start_server(runner)
    client = connect(server)
    clips = [make_clip(64, seed=s) for s in range(3)]
    jobs = [client.submit(**c) for c in clips]
    assert [j.position for j in jobs] == [0, 1, 2]
    seen_positions = []
    for event in jobs[2].events(timeout=30):
        if isinstance(event, Progress):
            seen_positions.append(event.position)
    assert seen_positions == sorted(seen_positions, reverse=True)  # it only moves forward
    assert seen_positions[0] <= 2 and 1 in seen_positions and seen_positions[-1] == 0
    for job, clip in zip(jobs, clips):
        assert_result_is(job.wait(timeout=30), clip)
    assert runner.calls == 3


def test_two_clients_at_once_get_their_own_results(start_server, connect):
    server = start_server(TinyRunner(window=40, step_s=0.02))
    results, errors = {}, []

    def work(seed: int) -> None:
        try:
            client = connect(server)
            clip = make_clip(160 + seed, seed=seed)
            results[seed] = (clip, client.submit(**clip, preset="best").wait(timeout=30))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in (11, 12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and set(results) == {11, 12}
    for clip, result in results.values():
        assert_result_is(result, clip, preset="best")


def test_cancel_mid_job_is_honoured_within_a_second(start_server, connect):
    runner = TinyRunner(window=10, step_s=0.2)  # 10 s of "work"
    server = start_server(runner)
    client = connect(server)
    job = client.submit(**make_clip(500))
    next(e for e in job.events(timeout=10) if isinstance(e, Progress) and e.stage == "smooth")
    t0 = time.monotonic()
    assert job.cancel() is True
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(JobCancelled):
        job.wait(timeout=5)
    wait_until(lambda: runner.stopped == 1, timeout=1.0)  # the runner itself stopped
    wait_until(lambda: not client.ping()["busy"], timeout=2.0)
    clip = make_clip(30, seed=3)
    assert_result_is(client.submit(**clip).wait(timeout=20), clip)  # and the device serves again
    assert job.cancel() is False


def test_cancel_queued_job_and_unknown_job(start_server, connect, raw_peer):
    runner = TinyRunner(window=32, step_s=0.1)
    server = start_server(runner)
    client = connect(server)
    first, second = client.submit(**make_clip(96)), client.submit(**make_clip(96))
    assert second.cancel() is True
    with pytest.raises(JobCancelled):
        list(second.events(timeout=5))
    first.wait(timeout=20)
    assert runner.calls == 1
    peer = raw_peer(server)
    peer.send_message(protocol.Message("cancel", {"job_id": "nope"}, job_id="nope"))
    reply = peer.recv()
    assert reply.type == "error" and reply.content["code"] == "unknown_job"
    assert first.cancel() is False  # already finished


def test_ping_is_answered_while_a_job_runs(start_server, connect):
    server = start_server(TinyRunner(window=10, step_s=0.2))  # a 6 s job
    client = connect(server)
    job = client.submit(**make_clip(300))
    assert next(job.events(timeout=10)).stage == "started"
    other = connect(server)
    for _ in range(3):
        t0 = time.monotonic()
        pong = other.ping(timeout=5)
        assert time.monotonic() - t0 < 1.0  # answered at once, not after the job
        assert pong["busy"] is True and pong["running"] == [job.id]
    assert not job.finished
    job.cancel()


def test_a_client_that_disconnects_mid_job_does_not_break_the_server(start_server, connect):
    runner = TinyRunner(window=10, step_s=0.2)
    server = start_server(runner)
    leaver = Client(server.info, timeout=5)
    leaver.submit(**make_clip(300))
    time.sleep(0.3)
    leaver.close()
    client = connect(server)
    wait_until(lambda: not client.ping()["busy"], timeout=5)  # its job was cancelled, the device freed
    assert runner.stopped == 1
    clip = make_clip(40, seed=5)
    assert_result_is(client.submit(**clip).wait(timeout=20), clip)


@pytest.mark.parametrize(
    "error, code, text",
    [
        (None, "job_failed", "too short for this preset"),
        (RuntimeError("boom"), "internal", r"internal error \(RuntimeError: boom\)"),
    ],
)
def test_runner_failures_become_error_replies_and_the_server_keeps_serving(start_server, connect, error, code, text):
    runner = failing() if error is None else TinyRunner(fail=error)
    server = start_server(runner)
    client = connect(server)
    job = client.submit(**make_clip(20))
    with pytest.raises(JobFailed, match=text) as info:
        job.wait(timeout=10)
    assert info.value.code == code and job.state == "failed"
    assert client.ping()["busy"] is False
    runner.fail = None
    clip = make_clip(20, seed=2)
    assert_result_is(client.submit(**clip).wait(timeout=10), clip)


def test_runner_output_of_the_wrong_shape_is_an_internal_error(start_server, connect):
    def bad_runner(job, sink, should_stop):
        out = TinyRunner()(job, sink, should_stop)
        out.contacts = out.contacts[:, :8]
        return out

    client = connect(start_server(bad_runner))
    with pytest.raises(JobFailed, match=r"'contacts' has shape \(20, 8\), expected \(20, 9\)"):
        client.submit(**make_clip(20)).wait(timeout=10)


def test_jobs_on_two_devices_run_side_by_side(start_server, connect):
    slow, fast = TinyRunner(window=10, step_s=0.2), TinyRunner()
    client = connect(start_server(runners={"cpu": slow, "cuda": fast}))
    long_job = client.submit(**make_clip(200))
    clip = make_clip(30, seed=9)
    short = client.submit(**clip, device="cuda")
    assert short.position == 0
    result = short.wait(timeout=10)
    assert_result_is(result, clip, device="cuda")
    assert long_job.state == "running"
    long_job.cancel()
    with pytest.raises(BackendError, match="restart the backend with --device mps") as info:
        client.submit(**clip, device="mps")
    assert info.value.code == "bad_input"


def test_full_queue_says_busy(start_server, connect):
    client = connect(start_server(TinyRunner(window=10, step_s=0.2), max_queued=2))
    jobs = [client.submit(**make_clip(100))]
    assert next(jobs[0].events(timeout=10)).stage == "started"
    jobs += [client.submit(**make_clip(100)) for _ in range(2)]  # one running, two waiting
    with pytest.raises(BackendError, match="already has 2 jobs waiting") as info:
        client.submit(**make_clip(10))
    assert info.value.code == "busy"
    for job in jobs:
        job.cancel()


def test_bad_input_is_caught_by_the_client_before_sending(start_server, connect):
    runner = TinyRunner()
    client = connect(start_server(runner))
    clip = make_clip(20)
    clip["trans"][3, 1] = np.nan
    with pytest.raises(BackendError, match="'trans' holds NaN") as info:
        client.submit(**clip)
    assert info.value.code == "bad_input"
    with pytest.raises(BackendError, match="unknown option"):
        client.submit(**make_clip(20), smoothing=3)
    assert runner.calls == 0


def test_stopping_the_server_mid_job_tells_the_client(start_server, connect):
    server = start_server(TinyRunner(window=10, step_s=0.2))
    client = connect(server)
    job = client.submit(**make_clip(300))
    time.sleep(0.2)
    server.stop()
    t0 = time.monotonic()
    with pytest.raises(BackendGone, match="stopped before this job finished"):
        job.wait(timeout=10)
    assert time.monotonic() - t0 < 3.0
    assert not server.connection_file.exists()


def test_nobody_listening_raises_backend_gone_quickly():
    import socket

    with socket.socket() as s:  # a free port with no backend behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(protocol.ConnectionInfo("127.0.0.1", port, b"x" * 32), timeout=0.5)
    try:
        t0 = time.monotonic()
        with pytest.raises(BackendGone, match="did not answer 'hello' within 0.5 s"):
            client.hello()
        assert time.monotonic() - t0 < 2.0
    finally:
        client.close()


def test_missing_connection_file_is_backend_gone(tmp_path):
    with pytest.raises(BackendGone, match="is the DREAMoR backend running"):
        Client.from_connection_file(tmp_path / "none.json")


def test_verbatim_copies_of_the_wire_work_in_another_package(start_server, tmp_path, monkeypatch, build_addon):
    """The add-on ships the wire modules (protocol, its parts, the client) inside its own package, unchanged."""
    import importlib
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    src = Path(protocol.__file__).parent
    pkg = tmp_path / "addon_wire"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in build_addon.WIRE_FILES:
        shutil.copy(src / name, pkg / name)
    monkeypatch.syspath_prepend(str(tmp_path))
    copied = importlib.import_module("addon_wire.client")
    server = start_server()
    with copied.Client.from_connection_file(server.connection_file, timeout=10) as client:
        clip = make_clip(50, seed=4)
        result = client.submit(**clip).wait(timeout=20)
    assert_result_is(result, clip)
    code = "import sys, addon_wire.client; assert not [m for m in sys.modules if m.startswith(('torch', 'dreamor'))]"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=60)


def test_a_ping_after_the_result_never_lists_the_finished_job(start_server, connect, monkeypatch):
    """The worker let go of a job only after its result was sent: a ping answered in between said busy (here the
    worker is slowed after sending, so a ping always lands in between)."""
    from dreamor.server.jobs import DeviceQueue

    run = DeviceQueue._run
    monkeypatch.setattr(DeviceQueue, "_run", lambda self, job, job_input: (run(self, job, job_input), time.sleep(0.3)))
    server = start_server(TinyRunner())
    client = connect(server)
    for seed in range(3):
        client.submit(**make_clip(20, seed=seed)).wait(timeout=10)
        pong = client.ping()
        assert pong["busy"] is False and pong["running"] == [], pong
        time.sleep(0.3)


def test_a_port_left_in_time_wait_is_free_and_a_listening_one_is_told(tmp_path):
    """`dreamor serve --port P` right after a backend on P stopped: P's last connection lingers in TIME-WAIT, which
    ZeroMQ's bind accepts, so the early check must too; a port someone listens on is one clear line."""
    import socket

    from dreamor.errors import DreamorError
    from dreamor.server.server import _check_port_free

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ's listener
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    with pytest.raises(DreamorError, match=f"cannot listen on 127.0.0.1:{port}.*pick another --port"):
        _check_port_free(port)
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server's side closes first: its end (port P) goes to TIME-WAIT
    client.recv(1)
    client.close()
    listener.close()
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:  # without the reuse option the port reads as taken (the bug); with it, it is free
        plain.bind(("127.0.0.1", port))
        lingering = False
    except OSError:
        lingering = True
    finally:
        plain.close()
    if not lingering:
        pytest.skip("this system does not hold the closed connection in TIME-WAIT")
    _check_port_free(port)
