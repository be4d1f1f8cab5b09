"""Provider requests run on reused daemon threads: every attempt gets a thread at once (none waits
behind another attempt), and an idle thread takes the next one."""

import threading

from worker.engine.llm import _AttemptThreads


def test_attempts_one_after_another_reuse_one_thread():
    pool = _AttemptThreads()
    seen = []
    for _ in range(50):
        done = threading.Event()

        def task(done=done):
            seen.append(threading.get_ident())
            done.set()

        pool.run(task)
        assert done.wait(10)
    assert len(seen) == 50 and len(set(seen)) == 1
    assert all(t.daemon for t in threading.enumerate() if t.name == "llm-attempt")


def test_concurrent_attempts_each_get_a_thread_at_once():
    pool = _AttemptThreads()
    for _ in range(3):  # the second and third rounds run on the threads the first one started
        barrier = threading.Barrier(20, timeout=10)  # broken if any attempt waited for another to end
        finished = []

        def task(barrier=barrier, finished=finished):
            barrier.wait()
            finished.append(1)

        for _ in range(20):
            pool.run(task)
        deadline = threading.Event()
        while len(finished) < 20 and not barrier.broken:
            deadline.wait(0.01)
        assert not barrier.broken and len(finished) == 20


def test_a_failing_task_does_not_end_its_thread():
    pool = _AttemptThreads()
    idents = []
    done = threading.Event()

    def boom():
        idents.append(threading.get_ident())
        raise RuntimeError("boom")

    def after():
        idents.append(threading.get_ident())
        done.set()

    pool.run(boom)
    while pool._idle == 0:  # wait until the thread is idle again
        threading.Event().wait(0.01)
    pool.run(after)
    assert done.wait(10) and idents[0] == idents[1]


def test_request_timeouts_take_few_values_so_litellm_keeps_its_pooled_clients():
    from worker.engine.llm import request_timeout_s
    assert request_timeout_s(300, 3000) == 300
    values = {request_timeout_s(300, left / 10) for left in range(1, 3000)}
    assert len(values) <= 11 and max(values) == 300
    for left in (0.1, 0.7, 3.2, 77.0, 299.0):
        assert left <= request_timeout_s(300, left) or request_timeout_s(300, left) == 0.5
        assert request_timeout_s(300, left) <= max(0.5, 2 * left)
