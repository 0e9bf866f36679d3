"""Response entropies when a response's tokens sit on several processes (docs/math.md,
"Response entropy across ranks"; sequence parallelism).

Hresp_b is the mean of the k_b = max(1, floor(top_fraction * L_b)) largest token entropies of
response b. With its tokens split over the processes of a group, each process holds some of
them. The merge here is exact and sends no token entropy and no logit:

1. one all-reduce of a header (a fault flag and R, so that a process whose input was refused
   makes every process raise instead of leaving the others waiting in a collective) and one
   of the per-response token counts (R int64) give every L_b, hence every k_b;
2. each process writes, for every response b, its own min(k_b, local count) largest token
   entropies into k_b slots (the rest -inf) and one all-gather exchanges those sum_b k_b
   values;
3. the k_b largest of a response's world_size * k_b candidates are its global top k_b (a
   token outside its process's local top k_b cannot be in the global one), and their mean,
   summed in float64 in descending order as libera sums, is Hresp_b.

Communication: a 3-integer header, R integers and sum_b k_b floats sent per process (the
all-gather receives world_size * sum_b k_b), never per-token values. Host reads, which
synchronise with the device: the checks of the ids and entropies, the header, and sum_b k_b
(to size the buffer).
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple, TypeVar

import torch
import torch.distributed as dist

from .._errors import BadIndexError, NonFiniteError, PeerInputError, python_error

__all__ = ["response_entropy_across", "agree_on_input"]

T = TypeVar("T")


def agree_on_input(group, where: str, local_step: Callable[[], Tuple[T, torch.Tensor]]):
    """Runs `local_step` (this process's checks and work before the first collective), which
    returns (result, counts: int64 ``[n]``), then agrees with the other processes: one
    all-reduce of a header (a fault flag and n, so that every process offers the same size)
    and one of the counts. A process whose step raised re-raises its own error, every other one
    raises PeerInputError: no process is left blocked in a later collective.
    Returns (result, the counts summed over the group)."""
    failure: Optional[Exception] = None
    result, counts = None, None
    try:
        result, counts = local_step()
    except Exception as error:  # noqa: BLE001 - re-raised below, once the others know
        failure = error
    size = -1 if counts is None else counts.numel()
    device = counts.device if counts is not None else _group_device(group)
    header = torch.tensor([int(failure is not None), size, -size], dtype=torch.int64, device=device)
    dist.all_reduce(header, op=dist.ReduceOp.MAX, group=group)
    if failure is not None:
        raise failure
    if int(header[0]) > 0:
        raise python_error(PeerInputError, where, "another process of the group refused its input (its own "
                           "error names the fault); nothing was computed")
    if int(header[1]) != -int(header[2]):
        raise python_error(PeerInputError, where, f"the processes disagree on the number of responses "
                           f"({size} here; between {-int(header[2])} and {int(header[1])} in the group)")
    dist.all_reduce(counts, op=dist.ReduceOp.SUM, group=group)
    return result, counts


def _group_device(group) -> torch.device:
    backend = dist.get_backend(group)
    if backend == "nccl" and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def local_counts(response_ids: torch.Tensor, num_responses: int) -> torch.Tensor:
    """``[R]`` int64: how many of these tokens belong to each response (id -1: none)."""
    ids = torch.where(response_ids < 0, torch.full_like(response_ids, num_responses), response_ids)
    return torch.bincount(ids, minlength=num_responses + 1)[:num_responses]


def check_members(token_entropy: torch.Tensor, response_ids: torch.Tensor, num_responses: int, where: str) -> None:
    """The checks libera makes on one process's tokens: ids in -1..R-1, finite entropies of the
    tokens that belong to a response (one host read)."""
    bad = (response_ids < -1) | (response_ids >= num_responses)
    if bool(bad.any()):
        raise python_error(BadIndexError, where, f"a response id lies outside -1..{num_responses - 1}")
    if bool(((response_ids >= 0) & ~torch.isfinite(token_entropy)).any()):
        raise python_error(NonFiniteError, where, "a token of a response has a non-finite entropy")


def _rank_within(values: torch.Tensor, groups: torch.Tensor, num_groups: int):
    """Sorts by group, then by value descending; returns (sorted values, sorted groups, the
    rank of each within its group)."""
    order = torch.argsort(values, descending=True, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    values, groups = values[order], groups[order]
    sizes = torch.bincount(groups, minlength=num_groups)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.arange(values.shape[0], device=values.device) - starts[groups]
    return values, groups, rank


def response_entropy_across(token_entropy: torch.Tensor, response_ids: torch.Tensor, totals: torch.Tensor,
                            top_fraction: float, group) -> torch.Tensor:
    """``[R]`` response entropies of the whole group, from this process's tokens.

    token_entropy ``[n]`` (float32 or float64) and response_ids ``[n]`` (int64, -1 for no
    response) are this process's tokens; totals ``[R]`` int64 the global token count of each
    response (from agree_on_input). Returns Hresp in token_entropy's dtype, NaN for a response
    without tokens anywhere."""
    responses = totals.shape[0]
    device, dtype = token_entropy.device, token_entropy.dtype
    # k_b = max(1, floor(top_fraction * L_b)), in double as libera computes it.
    top = torch.clamp(torch.floor(top_fraction * totals.to(torch.float64)), min=1).to(torch.int64)
    offsets = torch.cumsum(top, 0) - top
    slots = int(top.sum()) if responses else 0
    ids = torch.where(response_ids < 0, torch.full_like(response_ids, responses), response_ids)
    values, groups, rank = _rank_within(token_entropy, ids, responses + 1)
    top_ext, offsets_ext = torch.cat([top, top.new_zeros(1)]), torch.cat([offsets, offsets.new_zeros(1)])
    keep = rank < top_ext[groups]  # the -1 bucket (group R) keeps nothing
    mine = torch.full((slots,), -torch.inf, dtype=dtype, device=device)
    mine[(offsets_ext[groups] + rank)[keep]] = values[keep]
    world = dist.get_world_size(group)
    gathered = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine, group=group)
    candidates = torch.stack(gathered).reshape(-1)
    slot_response = torch.repeat_interleave(torch.arange(responses, device=device), top).repeat(world)
    values, groups, rank = _rank_within(candidates, slot_response, responses)
    chosen = rank < top[groups]
    sums = torch.zeros(responses, dtype=torch.float64, device=device)
    sums.index_add_(0, groups[chosen], values[chosen].to(torch.float64))
    mean = (sums / top.to(torch.float64)).to(dtype)
    return torch.where(totals > 0, mean, torch.full_like(mean, torch.nan))
