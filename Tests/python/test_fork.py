"""fork() while another thread is inside libera (era.h: "fork() is safe at any moment").

A metrics thread calling era while the main thread forks (plain os.fork, or a torch
DataLoader starting fork workers) used to leave the child with libera's worker pool in the
state the parent's threads had it: its lock possibly held by a thread that does not exist in
the child (a hang), and no workers. Children must compute, on threads of their own, results
bit-identical to the serial ones. Every wait here has a timeout, so a regression fails
instead of hanging the run.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import era

FORKS = 100


@pytest.fixture
def two_threads():
    before = era.get_num_threads()
    era.set_num_threads(2)
    yield
    era.set_num_threads(0 if before == os.cpu_count() else before)


def inputs():
    rng = np.random.default_rng(11)
    z = rng.normal(size=(64, 2048)) * 3.0  # discrete ERA: large enough to split across threads
    logits = rng.normal(size=(8, 16384)).astype(np.float32)
    return z, logits


def compute(z, logits):
    return era.discrete_forward(z, 0.5 * np.log(z.shape[-1])), era.token_entropy(logits)


class Caller:
    """A thread calling era in a loop, checking every result against the reference."""

    def __init__(self, z, logits, want):
        self.z, self.logits, self.want = z, logits, want
        self.stop = threading.Event()
        self.calls = self.mismatches = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            got = compute(self.z, self.logits)
            self.mismatches += not all(np.array_equal(g, w) for g, w in zip(got, self.want))
            self.calls += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def test_forks_while_another_thread_is_inside_era(two_threads):
    z, logits = inputs()
    era.set_num_threads(1)
    want = compute(z, logits)
    era.set_num_threads(2)
    rng = np.random.default_rng(5)
    outcomes = {"clean": 0, "wrong": 0, "single-threaded": 0, "hung": 0, "other": 0}
    with Caller(z, logits, want) as caller:
        for _ in range(FORKS):
            time.sleep(rng.uniform(0.0002, 0.002))  # fork at a different moment of each call
            pid = os.fork()
            if pid == 0:  # the child: no pytest machinery, only os._exit
                code = 5
                try:
                    signal.alarm(30)
                    got = compute(z, logits)
                    same = all(np.array_equal(g, w) for g, w in zip(got, want))
                    threads = len(os.listdir("/proc/self/task"))  # the pool started workers here
                    code = 0 if same and threads > 1 else (3 if not same else 4)
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status):
                outcome = {0: "clean", 3: "wrong", 4: "single-threaded"}.get(os.WEXITSTATUS(status), "other")
            elif os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
                outcome = "hung"
            else:
                outcome = "other"
            outcomes[outcome] += 1
    assert outcomes["clean"] == FORKS, outcomes
    assert caller.calls > 0 and caller.mismatches == 0


class EraDataset:
    """Each item is computed by era in the DataLoader worker (a forked child)."""

    def __init__(self, z, logits):
        self.z, self.logits = z, logits

    def __len__(self):
        return 16

    def __getitem__(self, i):
        h = era.token_entropy(np.roll(self.logits, i, axis=0))
        out = era.discrete_forward(np.roll(self.z, i, axis=0), 0.5 * np.log(self.z.shape[-1]))
        return h, out[:4]


def test_dataloader_fork_workers_while_another_thread_calls_era(two_threads):
    torch = pytest.importorskip("torch")
    z, logits = inputs()
    era.set_num_threads(1)
    want = compute(z, logits)
    dataset = EraDataset(z, logits)
    expected = [dataset[i] for i in range(len(dataset))]
    era.set_num_threads(2)
    with Caller(z, logits, want) as caller:
        for epoch in range(3):
            loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2,
                                                 multiprocessing_context="fork", timeout=60)
            got = [item for batch in loader for item in zip(*batch)]
            assert len(got) == len(expected), epoch
            for (h, out), (h_want, out_want) in zip(got, expected):
                assert np.array_equal(h.numpy(), h_want) and np.array_equal(out.numpy(), out_want), epoch
    assert caller.calls > 0 and caller.mismatches == 0
