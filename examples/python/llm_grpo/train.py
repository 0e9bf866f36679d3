"""LLM ERA in GRPO on a tiny transformer (docs/math.md §3), PyTorch.

Task: two-digit addition, exact-match reward. The prompt is ``BOS a1 a0 + b1 b0 =`` and the
response is the three digits of a + b least-significant first, then EOS (vocabulary of 14
tokens). A 2-layer, d=64 causal transformer gets a supervised warm-up on the training prompts
(until 30% of sampled answers are exact), then GRPO: G sampled responses per prompt (temperature 1), group-normalised
advantages, one on-policy policy-gradient step per batch (where the clipped objective's
ratio is 1, so it reduces to -A * logp averaged over response tokens). Two runs from the same
warm-up checkpoint:
- GRPO: logp from log_softmax of the logits.
- GRPO-ERA: era.torch.llm_era on the response logits, and its returned log-probs and
  advantages in the same loss (omega_low 0.45, omega_high 3.0, k 2, top 20% of tokens).

Measured: token and response entropy during RL, pass@1 and pass@8 (unbiased estimator from 16
samples) on held-out prompts before and after RL. Verified on every ERA call of training: what
§3 promises (the rule that picks each token's logit scale from its response's entropy and
advantage, A' = A / s, and logp' = log softmax(s*z)[a]); §3 promises no entropy floor.

    python3 examples/python/llm_grpo/train.py --quick   # 1 seed, 500 GRPO steps
    python3 examples/python/llm_grpo/train.py           # 3 seeds, 1500 GRPO steps
"""

from __future__ import annotations

import copy
import sys
from math import comb
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import era
import era.torch as et

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/python: common.py
from common import (  # noqa: E402
    finish, fmt, markdown_table, mean_std, measure_overhead, overhead_line, parse_args, plt, write_outputs,
)

NAME = "llm_grpo"
PLUS, EQUALS, BOS, EOS = 10, 11, 12, 13
VOCAB = 14
PROMPT_LEN, RESPONSE_LEN = 7, 4
D_MODEL, LAYERS, HEADS = 64, 2, 4
WARMUP_LR, RL_LR = 3e-3, 5e-4
WARMUP_BATCH = 128
WARMUP_TARGET, WARMUP_CHECK, WARMUP_CHECK_EVERY, WARMUP_MAX_STEPS = 0.3, 256, 10, 1000
PROMPTS_PER_STEP, GROUP = 16, 8
TEST_PROMPTS, EVAL_SAMPLES, PASS_K = 200, 16, 8
LLM = dict(omega_low=0.45, omega_high=3.0, k=2.0, top_fraction=0.2)  # the spec's defaults (§3)
VERIFY_TOL = 1e-4  # nats, float32 kernels against a float64 torch reference


class TinyLM(nn.Module):
    """A causal transformer: token + position embeddings, pre-norm layers, untied output."""

    def __init__(self):
        super().__init__()
        length = PROMPT_LEN + RESPONSE_LEN
        self.token = nn.Embedding(VOCAB, D_MODEL)
        self.position = nn.Embedding(length, D_MODEL)
        layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, 2 * D_MODEL, dropout=0.0, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(D_MODEL)
        self.out = nn.Linear(D_MODEL, VOCAB)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(length))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, L] -> [B, L, V]`` next-token logits."""
        length = tokens.shape[1]
        h = self.token(tokens) + self.position(torch.arange(length))
        h = self.layers(h, mask=self.causal[:length, :length], is_causal=True)
        return self.out(self.norm(h))


def encode(pairs: np.ndarray):
    """Prompts ``[N, 7]`` and target responses ``[N, 4]`` for (a, b) pairs."""

    def digits(x, n):  # least significant first
        return np.stack([(x // 10 ** i) % 10 for i in range(n)], axis=1)

    a, b = pairs[:, 0], pairs[:, 1]
    prompts = np.concatenate([np.full((len(a), 1), BOS), digits(a, 2)[:, ::-1], np.full((len(a), 1), PLUS),
                              digits(b, 2)[:, ::-1], np.full((len(a), 1), EQUALS)], axis=1)
    responses = np.concatenate([digits(a + b, 3), np.full((len(a), 1), EOS)], axis=1)
    return torch.tensor(prompts, dtype=torch.int64), torch.tensor(responses, dtype=torch.int64)


def split(seed: int = 0):
    """All 10,000 pairs, TEST_PROMPTS of them held out (fixed, independent of the run seed)."""
    pairs = np.array([(a, b) for a in range(100) for b in range(100)])
    order = np.random.default_rng(seed).permutation(len(pairs))
    return pairs[order[TEST_PROMPTS:]], pairs[order[:TEST_PROMPTS]]


@torch.no_grad()
def sample(model: TinyLM, prompts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """RESPONSE_LEN tokens per prompt at temperature 1; returns the full sequences."""
    seq = prompts
    for _ in range(RESPONSE_LEN):
        probs = torch.softmax(model(seq)[:, -1], dim=-1)
        seq = torch.cat([seq, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return seq


def rewards(seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (seq[:, PROMPT_LEN:] == targets).all(dim=1).float()


def pass_at(model: TinyLM, pairs: np.ndarray, seed: int):
    """(pass@1, pass@k) on `pairs`: EVAL_SAMPLES samples each, the unbiased estimator
    1 - C(n - c, k) / C(n, k) with c correct of n, averaged over prompts."""
    prompts, targets = encode(pairs)
    generator = torch.Generator().manual_seed(seed)
    seq = sample(model, prompts.repeat_interleave(EVAL_SAMPLES, 0), generator)
    correct = rewards(seq, targets.repeat_interleave(EVAL_SAMPLES, 0)).view(-1, EVAL_SAMPLES).sum(1).long().tolist()
    n = EVAL_SAMPLES
    estimate = lambda k: float(np.mean([1 - comb(n - c, k) / comb(n, k) for c in correct]))  # noqa: E731
    return estimate(1), estimate(PASS_K)


def warm_up(model: TinyLM, pairs: np.ndarray, seed: int) -> int:
    """Teacher-forced cross-entropy on the response tokens until the sampled (temperature 1)
    exact-match rate on WARMUP_CHECK training prompts reaches WARMUP_TARGET, checked every
    WARMUP_CHECK_EVERY steps (at most WARMUP_MAX_STEPS); returns the steps taken. A fixed
    step count would leave some seeds with almost no reward signal: the accuracy of this
    model jumps within a few dozen steps, at a point that varies with the seed."""
    optimizer = torch.optim.Adam(model.parameters(), lr=WARMUP_LR)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed + 3)
    check_prompts, check_targets = encode(pairs[rng.integers(0, len(pairs), WARMUP_CHECK)])
    for step in range(1, WARMUP_MAX_STEPS + 1):
        prompts, responses = encode(pairs[rng.integers(0, len(pairs), WARMUP_BATCH)])
        seq = torch.cat([prompts, responses], dim=1)
        logits = model(seq[:, :-1])[:, PROMPT_LEN - 1:]
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), responses.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % WARMUP_CHECK_EVERY == 0:
            if rewards(sample(model, check_prompts, generator), check_targets).mean() >= WARMUP_TARGET:
                break
    return step


def response_batch(seq: torch.Tensor):
    """Inputs, labels and response mask of the policy update: the logits at position t
    predict token t + 1; the mask is on the RESPONSE_LEN sampled tokens."""
    inputs, labels = seq[:, :-1], seq[:, 1:]
    mask = torch.zeros(labels.shape, dtype=torch.bool)
    mask[:, PROMPT_LEN - 1:] = True
    return inputs, labels, mask


def group_advantages(reward: torch.Tensor) -> torch.Tensor:
    """GRPO: (r - group mean) / (group std + eps), per response."""
    r = reward.view(-1, GROUP)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).view(-1)


def policy_loss(model: TinyLM, seq: torch.Tensor, advantages: torch.Tensor, use_era: bool):
    """The on-policy GRPO loss -mean over response tokens of A * logp (ERA: A' * logp');
    returns the loss and, with ERA, llm_era's output (else None) and the logits."""
    inputs, labels, mask = response_batch(seq)
    logits = model(inputs)
    if use_era:
        out = et.llm_era(logits, labels, advantages, response_mask=mask, **LLM)
        logprobs, adv = out.logprobs, out.advantages
    else:
        out = None
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        adv = advantages.unsqueeze(1).expand_as(logprobs)
    loss = -(adv * logprobs * mask).sum() / mask.sum()
    return loss, out, logits.detach(), labels, mask


def verify_llm_era(out, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor):
    """Checks one llm_era output against what §3 states, with a float64 torch reference:
    token entropies, response entropies (mean of the top max(1, floor(f*L)) token entropies),
    the scale rule, A' = A / s and logp' = log softmax(s*z)[a]. Returns counts of mismatches."""
    z = logits.double()
    token_h = -(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum(-1)
    top = max(1, int(LLM["top_fraction"] * RESPONSE_LEN))  # every response has RESPONSE_LEN tokens
    resp_h = token_h.masked_fill(~mask, -float("inf")).topk(top, dim=1).values.mean(1)
    h = out.response_entropy  # float32: the thresholds are compared in float32 (§3, docs/python.md)
    adv = advantages.unsqueeze(1).expand_as(labels)
    k = LLM["k"]
    scale = torch.ones_like(out.logit_scale)
    scale = torch.where(((h < LLM["omega_low"]).unsqueeze(1) & (adv > 0) & mask), torch.full_like(scale, k), scale)
    scale = torch.where(((h > LLM["omega_high"]).unsqueeze(1) & (adv > 0) & mask), torch.full_like(scale, 1 / k), scale)
    scaled = out.logit_scale.double().unsqueeze(-1) * z
    ref_logp = torch.log_softmax(scaled, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return {
        "tokens": int(mask.sum()),
        "responses": int(mask.shape[0]),
        "token_entropy": int(((out.token_entropy.double() - token_h).abs() > VERIFY_TOL).sum()),
        "response_entropy": int(((h.double() - resp_h).abs() > VERIFY_TOL).sum()),
        "scale_rule": int((out.logit_scale != scale).sum()),
        "advantage": int(((out.advantages.double() * out.logit_scale.double() - adv.double()).abs()
                          > VERIFY_TOL * (1 + adv.double().abs())).sum()),
        "logprob": int(((out.logprobs.detach().double() - ref_logp).abs() > VERIFY_TOL).sum()),
        "scaled_k": int(((out.logit_scale == k) & mask).sum()),
        "scaled_1_over_k": int(((out.logit_scale == 1 / k) & mask).sum()),
        "below_omega_low": int((h < LLM["omega_low"]).sum()),
    }


def grpo(model: TinyLM, pairs: np.ndarray, steps: int, seed: int, use_era: bool):
    """GRPO from `model` (trained in place); returns per-step curves and the summed checks."""
    optimizer = torch.optim.Adam(model.parameters(), lr=RL_LR)
    rng = np.random.default_rng(seed + 1)
    generator = torch.Generator().manual_seed(seed + 2)
    curves = {"token_entropy": [], "response_entropy": [], "reward": [], "below_omega_low": [], "scaled_k": [],
              "int64_test_differs": [], "advantage_in_0_1": []}
    checks = {}
    for _ in range(steps):
        prompts, targets = encode(pairs[rng.integers(0, len(pairs), PROMPTS_PER_STEP)])
        seq = sample(model, prompts.repeat_interleave(GROUP, 0), generator)
        reward = rewards(seq, targets.repeat_interleave(GROUP, 0))
        advantages = group_advantages(reward)
        loss, out, logits, labels, mask = policy_loss(model, seq, advantages, use_era)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if out is None:  # the same metrics for plain GRPO, from libera's entropy kernels
            token_h = et.token_entropy(logits)
            ids = torch.arange(len(seq)).unsqueeze(1).expand_as(labels).masked_fill(~mask, -1)
            resp_h = torch.from_numpy(era.llm_response_entropy(token_h.numpy(), ids.numpy(), len(seq), **LLM))
        else:
            token_h, resp_h = out.token_entropy, out.response_entropy
            for key, value in verify_llm_era(out, logits, labels, mask, advantages).items():
                checks[key] = checks.get(key, 0) + value
            curves["scaled_k"].append(float(((out.logit_scale == LLM["k"]) & mask).sum() / mask.sum()))
            differs, in_0_1 = official_advantage_test(out, logits, labels, mask, advantages)
            curves["int64_test_differs"].append(differs)
            curves["advantage_in_0_1"].append(in_0_1)
        curves["token_entropy"].append(float(token_h[mask].mean()))
        curves["response_entropy"].append(float(resp_h.mean()))
        curves["below_omega_low"].append(float((resp_h < LLM["omega_low"]).float().mean()))
        curves["reward"].append(float(reward.mean()))
    return curves, checks


def official_advantage_test(out, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                            advantages: torch.Tensor):
    """What the official ERA-LLM actor's integer advantage test would change on this batch
    (docs/math.md §3, "The official code's advantage test"; era does not copy it): its A > 0
    test reads advantages stored in a tensor made by zeros_like(input_ids), int64, so an
    advantage in (0, 1) truncates to 0 and its response keeps scale 1. Returns the share of
    response tokens whose logit scale that test changes, and the share of responses with
    0 < A < 1."""
    with torch.no_grad():
        truncated = et.llm_era(logits, labels, advantages.trunc(), response_mask=mask, **LLM).logit_scale
    differs = float(((truncated != out.logit_scale) & mask).sum() / mask.sum())
    return differs, float(((advantages > 0) & (advantages < 1)).float().mean())


def step_overhead(model: TinyLM, pairs: np.ndarray):
    """Median GRPO step (forward, loss, backward, Adam) with llm_era vs plain log_softmax, on
    the same sampled batch from copies of the same model."""
    prompts, targets = encode(pairs[:PROMPTS_PER_STEP])
    seq = sample(model, prompts.repeat_interleave(GROUP, 0), torch.Generator().manual_seed(0))
    advantages = group_advantages(rewards(seq, targets.repeat_interleave(GROUP, 0)))
    steps = {}
    for use_era in (True, False):
        copy_ = copy.deepcopy(model)
        optimizer = torch.optim.Adam(copy_.parameters(), lr=RL_LR)

        def step(m=copy_, opt=optimizer, flag=use_era):
            loss = policy_loss(m, seq, advantages, flag)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[use_era] = step
    return measure_overhead(steps[True], steps[False], warmup=20, repeats=200)


def main(argv=None) -> int:
    args = parse_args(__doc__.splitlines()[0], quick_seeds=[0], long_seeds=[0, 1, 2], argv=argv)
    rl_steps = 500 if args.quick else 1500
    torch.set_num_threads(1)
    era.set_num_threads(1)
    train_pairs, test_pairs = split()
    print(f"two-digit addition: {len(train_pairs)} train / {len(test_pairs)} held-out prompts; seeds {args.seeds}; "
          f"warm-up to {WARMUP_TARGET:.0%} sampled exact match, {rl_steps} GRPO steps of "
          f"{PROMPTS_PER_STEP} prompts x {GROUP} samples; "
          f"ERA {LLM}")

    runs = {"GRPO": [], "GRPO-ERA": []}
    checks, timing, warmup_steps = {}, None, {}
    for seed in args.seeds:
        torch.manual_seed(seed)
        base = TinyLM()
        warmup_steps[seed] = warm_up(base, train_pairs, seed)
        before = pass_at(base, test_pairs, seed)
        print(f"seed {seed} after {warmup_steps[seed]} warm-up steps: pass@1 {before[0]:.3f}, "
              f"pass@{PASS_K} {before[1]:.3f}")
        if timing is None:
            timing = step_overhead(base, train_pairs)
        for name in runs:
            model = copy.deepcopy(base)
            curves, run_checks = grpo(model, train_pairs, rl_steps, seed, use_era=name == "GRPO-ERA")
            after = pass_at(model, test_pairs, seed)
            for key, value in run_checks.items():
                checks[key] = checks.get(key, 0) + value
            runs[name].append({"seed": seed, "before": before, "after": after, "curves": curves})
            tail = slice(-max(1, rl_steps // 10), None)
            print(f"seed {seed} {name:8s} after RL: pass@1 {after[0]:.3f}, pass@{PASS_K} {after[1]:.3f}; "
                  f"response-token entropy first {curves['token_entropy'][0]:.3f} -> last 10% "
                  f"{np.mean(curves['token_entropy'][tail]):.3f} nats")

    mismatches = {key: checks[key] for key in ("token_entropy", "response_entropy", "scale_rule", "advantage",
                                               "logprob")}
    holds = sum(mismatches.values()) == 0
    print(f"bound report (LLM ERA, §3 rule) over every GRPO-ERA update: {checks['tokens']} response tokens, "
          f"{checks['responses']} responses; mismatches vs a float64 reference (tol {VERIFY_TOL}): {mismatches}: "
          f"{'HOLDS' if holds else 'VIOLATED'}")
    print(f"  responses below omega_low {LLM['omega_low']}: {checks['below_omega_low']}; tokens scaled by k: "
          f"{checks['scaled_k']}, by 1/k: {checks['scaled_1_over_k']} (no entropy floor is promised by §3)")
    era_curves = [r["curves"] for r in runs["GRPO-ERA"]]
    differs = np.concatenate([c["int64_test_differs"] for c in era_curves])
    in_0_1 = np.concatenate([c["advantage_in_0_1"] for c in era_curves])
    official = {"tokens_mean": float(differs.mean()), "tokens_min": float(differs.min()),
                "tokens_max": float(differs.max()), "responses_in_0_1_mean": float(in_0_1.mean())}
    print(f"the official actor's int64 advantage test (A in (0, 1) truncated to 0; era keeps the float test) "
          f"would change the logit scale of {official['tokens_mean']:.1%} of response tokens per GRPO-ERA step "
          f"(range {official['tokens_min']:.1%} to {official['tokens_max']:.1%}); responses with 0 < A < 1: "
          f"{official['responses_in_0_1_mean']:.1%}")
    print(f"GRPO step: {overhead_line(timing)}")

    tail = slice(-max(1, rl_steps // 10), None)
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "pass1_before": mean_std(r["before"][0] for r in rs),
            f"pass{PASS_K}_before": mean_std(r["before"][1] for r in rs),
            "pass1_after": mean_std(r["after"][0] for r in rs),
            f"pass{PASS_K}_after": mean_std(r["after"][1] for r in rs),
            "token_entropy_last": mean_std(np.mean(r["curves"]["token_entropy"][tail]) for r in rs),
            "response_entropy_last": mean_std(np.mean(r["curves"]["response_entropy"][tail]) for r in rs),
            "below_omega_low_last": mean_std(np.mean(r["curves"]["below_omega_low"][tail]) for r in rs),
        }

    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for i, (name, rs) in enumerate(runs.items()):
        for j, r in enumerate(rs):
            c, label = r["curves"], name if j == 0 else None
            axes[0].plot(c["token_entropy"], color=f"C{i}", label=label)
            axes[1].plot(c["response_entropy"], color=f"C{i}", label=label)
            axes[2].plot(np.convolve(c["reward"], np.ones(10) / 10, mode="valid"), color=f"C{i}", label=label)
    axes[1].axhline(LLM["omega_low"], color="k", ls=":", lw=0.8, label=f"omega_low = {LLM['omega_low']}")
    axes[0].set(xlabel="GRPO step", ylabel="nats", title="mean token entropy of sampled responses")
    axes[1].set(xlabel="GRPO step", ylabel="nats", title="mean response entropy (top 20% tokens)")
    axes[2].set(xlabel="GRPO step", ylabel="reward", title="training reward (moving mean of 10 steps)")
    for ax in axes:
        ax.legend(fontsize=8)

    table = markdown_table(
        ["run", "pass@1 before", "pass@1 after", f"pass@{PASS_K} before", f"pass@{PASS_K} after",
         "token entropy, last 10% (nats)", "response entropy, last 10%", "share below omega_low, last 10%"],
        [[name, fmt(s["pass1_before"]), fmt(s["pass1_after"]), fmt(s[f"pass{PASS_K}_before"]),
          fmt(s[f"pass{PASS_K}_after"]), fmt(s["token_entropy_last"]), fmt(s["response_entropy_last"]),
          fmt(s["below_omega_low_last"])] for name, s in summary.items()],
    )
    plain, with_era = summary["GRPO"], summary["GRPO-ERA"]
    markdown = f"""## LLM GRPO: tiny transformer on two-digit addition ({rl_steps} GRPO steps, seeds {args.seeds})

2 layers, d = {D_MODEL}, vocabulary {VOCAB}; supervised warm-up until {WARMUP_TARGET:.0%} sampled exact match on training
prompts ({', '.join(str(v) for v in warmup_steps.values())} steps), then {PROMPTS_PER_STEP} prompts x {GROUP}
samples per step; pass@1 and pass@{PASS_K} from {EVAL_SAMPLES} samples on {TEST_PROMPTS} held-out prompts (mean ± std over seeds).
ERA: omega_low {LLM['omega_low']}, omega_high {LLM['omega_high']}, k {LLM['k']}, top {LLM['top_fraction']:.0%} of tokens.

{table}

Check of the §3 rule on every GRPO-ERA update ({checks['tokens']} response tokens, {checks['responses']} responses) against a
float64 torch reference (tol {VERIFY_TOL}): mismatches {mismatches}; {checks['scaled_k']} tokens were scaled by k and
{checks['scaled_1_over_k']} by 1/k. §3 promises this rule, not an entropy floor.

The official ERA-LLM actor tests A > 0 on advantages stored as int64 (docs/math.md §3), which truncates A in (0, 1)
to 0; on these batches that test would change the logit scale of {official['tokens_mean']:.1%} of response tokens per
step ({official['tokens_min']:.1%} to {official['tokens_max']:.1%}); {official['responses_in_0_1_mean']:.1%} of the
responses had 0 < A < 1. era keeps the paper's float test.

GRPO step time (median of {timing['repeats']}, {PROMPTS_PER_STEP * GROUP} responses, one thread): {timing['era_ms']:.3f} ms with
llm_era vs {timing['plain_ms']:.3f} ms with log_softmax: {timing['overhead_pct']:+.1f}%.

Over the last 10% of RL, the response-token entropy was {fmt(with_era['token_entropy_last'])} nats with ERA vs
{fmt(plain['token_entropy_last'])} without, with pass@1 {fmt(with_era['pass1_after'])} vs {fmt(plain['pass1_after'])} and
pass@{PASS_K} {fmt(with_era[f'pass{PASS_K}_after'])} vs {fmt(plain[f'pass{PASS_K}_after'])}.
"""
    write_outputs(args.out, NAME, figure, markdown, {
        "settings": {"seeds": args.seeds, "warmup_steps": warmup_steps, "warmup_target": WARMUP_TARGET, "rl_steps": rl_steps, "llm_era": LLM,
                     "prompts_per_step": PROMPTS_PER_STEP, "group": GROUP, "test_prompts": TEST_PROMPTS,
                     "eval_samples": EVAL_SAMPLES, "pass_k": PASS_K, "warmup_lr": WARMUP_LR, "rl_lr": RL_LR,
                     "d_model": D_MODEL, "layers": LAYERS, "vocab": VOCAB, "quick": args.quick},
        "summary": summary,
        "runs": runs,
        "rule_check": checks,
        "official_int64_advantage_test": official,
        "step_time": timing,
    })
    return finish(markdown, holds, "LLM ERA RULE VIOLATED")


if __name__ == "__main__":
    sys.exit(main())
