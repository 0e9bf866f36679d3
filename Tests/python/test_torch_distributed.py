"""era.torch.llm_era with a process group: the batch's tokens split over 2 processes (gloo,
CPU), as sequence parallelism splits them, must give the single-process result, exchanging
O(responses x k) values. Each check runs in 2 spawned processes; a process that fails raises,
and the parent fails the test (never waits forever: join has a deadline)."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
mp = pytest.importorskip("torch.multiprocessing")

if not dist.is_available():  # pragma: no cover - a torch built without distributed
    pytest.skip("torch.distributed is not available", allow_module_level=True)

WORLD = 2
VOCAB = 40
DEADLINE_S = 240


def _batch(seed: int = 0):
    """A packed batch of 7 responses of lengths 1..31 with prompt tokens (id -1) between them,
    one response without tokens (id 5), entropies spread from near 0 to near log(VOCAB) so that
    the rule sharpens some responses and flattens others, and advantages of both signs."""
    g = torch.Generator().manual_seed(seed)
    lengths = {0: 31, 1: 1, 2: 12, 3: 7, 4: 20, 6: 9}
    ids = []
    for b, n in lengths.items():
        ids += [-1] * int(torch.randint(0, 4, (), generator=g)) + [b] * n
    ids = torch.tensor(ids, dtype=torch.int64)
    tokens = ids.shape[0]
    # Per-response sharpness: responses 1 and 3 nearly one-hot (low entropy), 4 and 6 flat.
    sharp = torch.tensor([3.0, 25.0, 2.0, 18.0, 0.05, 1.0, 0.02])
    logits = torch.randn(tokens, VOCAB, generator=g, dtype=torch.float32)
    logits = logits * sharp[ids.clamp(min=0)].unsqueeze(1)
    labels = torch.randint(0, VOCAB, (tokens,), generator=g)
    adv_per_response = torch.tensor([0.8, 1.5, -0.4, 0.3, 2.0, 1.0, 0.6])
    advantages = adv_per_response[ids.clamp(min=0)].clone()
    return logits, labels, ids, advantages, 7


def _counting(record):
    """Wraps the collectives era.torch.distributed calls, recording what this process sends."""
    from era.torch import distributed as era_dist

    real_reduce, real_gather = era_dist.dist.all_reduce, era_dist.dist.all_gather

    def all_reduce(tensor, *args, **kwargs):
        record.append(("all_reduce", tensor.numel()))
        return real_reduce(tensor, *args, **kwargs)

    def all_gather(out, tensor, *args, **kwargs):
        record.append(("all_gather", tensor.numel()))
        return real_gather(out, tensor, *args, **kwargs)

    era_dist.dist.all_reduce, era_dist.dist.all_gather = all_reduce, all_gather


def _worker(rank: int, init_file: str, scenario: str):
    import era
    import era.torch as et

    torch.manual_seed(0)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        logits, labels, ids, advantages, responses = _batch()
        tokens = logits.shape[0]
        if scenario == "packed":
            full = et.llm_era(logits, labels, advantages, response_ids=ids, num_responses=responses)
            x_full = logits.clone().requires_grad_(True)
            full_grad = torch.autograd.grad(
                (et.llm_era(x_full, labels, advantages, response_ids=ids, num_responses=responses).logprobs
                 * advantages).sum(), x_full)[0]
            # Cuts inside responses, at a response boundary, and one that leaves rank 0 empty.
            for cut in (0, 5, 17, 40, 61, tokens - 3):
                share = slice(0, cut) if rank == 0 else slice(cut, tokens)
                record = []
                _counting(record)
                x = logits[share].clone().requires_grad_(True)
                out = et.llm_era(x, labels[share], advantages[share], response_ids=ids[share],
                                 num_responses=responses, process_group=dist.group.WORLD)
                torch.testing.assert_close(out.response_entropy, full.response_entropy, rtol=2e-7, atol=0,
                                           equal_nan=True, msg=f"response entropy, cut {cut}")
                assert torch.equal(out.logit_scale, full.logit_scale[share]), f"scales, cut {cut}"
                assert torch.equal(out.advantages, full.advantages[share]), f"advantages, cut {cut}"
                assert torch.equal(out.logprobs.detach(), full.logprobs[share]), f"logprobs, cut {cut}"
                grad = torch.autograd.grad((out.logprobs * advantages[share]).sum(), x)[0] if x.shape[0] else \
                    torch.zeros_like(x)
                torch.testing.assert_close(grad, full_grad[share], rtol=0, atol=0)
                # What this process sent: a 3-integer header, the R counts, and sum_b k_b entropies.
                totals = torch.bincount(ids[ids >= 0], minlength=responses)
                slots = int(torch.clamp(torch.floor(0.2 * totals.double()), min=1).sum())
                assert record == [("all_reduce", 3), ("all_reduce", responses), ("all_gather", slots)], record
                assert slots < tokens / 4
            # The device path (what CUDA tensors take), on CPU: the same merge.
            share = slice(0, 17) if rank == 0 else slice(17, tokens)
            out = et.llm_era(logits[share], labels[share], advantages[share], response_ids=ids[share],
                             num_responses=responses, process_group=dist.group.WORLD, backend="native")
            native = et.llm_era(logits, labels, advantages, response_ids=ids, num_responses=responses,
                                backend="native")
            torch.testing.assert_close(out.response_entropy, native.response_entropy, rtol=2e-7, atol=0,
                                       equal_nan=True)
            assert torch.equal(out.logit_scale, native.logit_scale[share])
            # The scales must differ from 1 somewhere, or the test would not test the rule.
            assert (full.logit_scale == 2.0).any() and (full.logit_scale == 0.5).any()
        elif scenario == "padded":
            # [B, L, V]: each process holds some positions of every response.
            batch, length = 4, 24
            g = torch.Generator().manual_seed(3)
            logits = torch.randn(batch, length, VOCAB, generator=g) * torch.tensor([20.0, 2.0, 0.05, 1.0]).view(4, 1, 1)
            labels = torch.randint(0, VOCAB, (batch, length), generator=g)
            mask = torch.rand(batch, length, generator=g) < 0.8
            mask[3] = False  # a response without tokens
            adv = torch.tensor([1.0, -1.0, 0.5, 2.0])
            full = et.llm_era(logits, labels, adv, response_mask=mask)
            cut = 10
            share = (slice(None), slice(0, cut)) if rank == 0 else (slice(None), slice(cut, length))
            out = et.llm_era(logits[share], labels[share], adv, response_mask=mask[share],
                             process_group=dist.group.WORLD)
            torch.testing.assert_close(out.response_entropy, full.response_entropy, rtol=2e-7, atol=0, equal_nan=True)
            assert torch.equal(out.logit_scale, full.logit_scale[share])
            assert torch.equal(out.logprobs, full.logprobs[share])
        elif scenario == "refused":
            # Rank 1 passes an out-of-range response id: it raises BadIndexError, rank 0
            # PeerInputError, and neither blocks. Then the group still works.
            bad = ids.clone()
            if rank == 1:
                bad[-1] = responses + 3
            share = slice(0, 30) if rank == 0 else slice(30, logits.shape[0])
            expected = era.BadIndexError if rank == 1 else era.PeerInputError
            with pytest.raises(expected):
                et.llm_era(logits[share], labels[share], advantages[share], response_ids=bad[share],
                           num_responses=responses, process_group=dist.group.WORLD)
            # A NaN logit on rank 0 only.
            nan_logits = logits.clone()
            if rank == 0:
                nan_logits[3, 7] = float("nan")
            expected = era.NonFiniteError if rank == 0 else era.PeerInputError
            with pytest.raises(expected):
                et.llm_era(nan_logits[share], labels[share], advantages[share], response_ids=ids[share],
                           num_responses=responses, process_group=dist.group.WORLD)
            # Disagreeing numbers of responses.
            with pytest.raises(era.PeerInputError, match="disagree"):
                et.llm_era(logits[share], labels[share], advantages[share], response_ids=ids[share],
                           num_responses=responses + rank, process_group=dist.group.WORLD)
            out = et.llm_era(logits[share], labels[share], advantages[share], response_ids=ids[share],
                             num_responses=responses, process_group=dist.group.WORLD)
            assert out.response_entropy.shape == (responses,)
        elif scenario == "verl":
            # verl_era, remove-padding layout, Ulysses-style shares of the real tokens (padded to
            # a multiple of 2): equal per-token results on each share, the whole batch's loss
            # value on both, and gradients that add up to the single-process one.
            from test_torch_verl import verl_batch

            b = verl_batch(seed=3)
            real = b["attention_mask"].bool()
            flat = b["logits"][real]
            tokens = flat.shape[0]
            share = -(-tokens // WORLD)
            padded = torch.cat([flat, torch.zeros(share * WORLD - tokens, flat.shape[1])])
            args = (b["responses"], b["response_mask"], b["advantages"], b["old_log_probs"])
            layout = dict(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
            whole = flat.clone().requires_grad_(True)
            single = et.verl_era(whole, *args, **layout)
            single_loss = single.policy_loss(0.2, 0.28, 3.0)
            single_grad = torch.autograd.grad(single_loss.loss, whole)[0]
            x = padded[rank * share:(rank + 1) * share].clone().requires_grad_(True)
            out = et.verl_era(x, *args, **layout, process_group=dist.group.WORLD)
            mine = out.local_mask
            assert mine.any() and not torch.equal(mine, single.local_mask)  # a response is split
            for name in ("log_probs", "advantages", "logit_scale", "entropy"):
                assert torch.equal(getattr(out, name)[mine], getattr(single, name)[mine]), name
            torch.testing.assert_close(out.response_entropy, single.response_entropy, rtol=2e-7, atol=0,
                                       equal_nan=True)
            for mode in ("token-mean", "seq-mean-token-mean"):
                loss = out.policy_loss(0.2, 0.28, 3.0, mode)
                ref = single.policy_loss(0.2, 0.28, 3.0, mode)
                torch.testing.assert_close(loss.loss, ref.loss, rtol=1e-6, atol=1e-7)
                torch.testing.assert_close(loss.clipfrac, ref.clipfrac)
            grad = torch.autograd.grad(out.policy_loss(0.2, 0.28, 3.0).loss, x)[0]
            summed = torch.zeros(share * WORLD, flat.shape[1])
            summed[rank * share:(rank + 1) * share] = grad
            dist.all_reduce(summed)
            torch.testing.assert_close(summed[:tokens], single_grad, rtol=1e-5, atol=1e-8)
        else:
            raise AssertionError(scenario)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("scenario", ["packed", "padded", "refused", "verl"])
def test_two_processes(scenario, tmp_path):
    init_file = str(tmp_path / "init")
    context = mp.start_processes(_worker, args=(init_file, scenario), nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD} processes did not finish within {DEADLINE_S} s (a blocked collective?)")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


def test_group_of_one_needs_num_responses_with_ids(tmp_path):
    """With a process group, num_responses cannot be read from the ids (each process sees
    only its own): the call refuses without it."""
    import era
    import era.torch as et

    logits, labels, ids, advantages, responses = _batch()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        with pytest.raises(era.BadShapeError, match="num_responses"):
            et.llm_era(logits, labels, advantages, response_ids=ids, process_group=dist.group.WORLD)
        # A group of one process is the single-process computation.
        out = et.llm_era(logits, labels, advantages, response_ids=ids, num_responses=responses,
                         process_group=dist.group.WORLD)
        full = et.llm_era(logits, labels, advantages, response_ids=ids, num_responses=responses)
        torch.testing.assert_close(out.response_entropy, full.response_entropy, rtol=2e-7, atol=0, equal_nan=True)
        assert torch.equal(out.logprobs, full.logprobs)
    finally:
        dist.destroy_process_group()
