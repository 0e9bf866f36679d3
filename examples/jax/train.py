"""Continuous ERA in JAX: a Gaussian policy for a 2-D point mass, trained by differentiating
through the dynamics (jit + grad), with era.jax.continuous_era as the policy's log-std head
(docs/math.md §1).

Task: a point starts at the origin and must reach a goal g drawn uniformly from
[-0.5, 0.5]^2 within T = 10 steps; p_{t+1} = p_t + 0.2 * a_t with a_t = tanh(x_t),
x_t ~ N(mean(s_t), std(s_t)^2), reward -|p_{t+1} - g|^2 per step. The return is
maximised by reparameterised gradients through the whole rollout (lax.scan). Nothing in the
objective rewards randomness, so a free log std collapses; two heads are compared:
- plain: log std = clip(raw output, -8, 0);
- ERA: log std = era.jax.continuous_era(raw output, H0 = -0.5 * D, residual delta), which keeps
  the Gaussian entropy of every state at or above H0 + delta; delta follows the paper's
  residual rule (a step against mean tanh-squashed entropy - H0, kept in [0, its feasible
  maximum]) so that the squashed entropy settles at H0.

    python3 examples/jax/train.py --quick    # 2 seeds, 400 iterations
    python3 examples/jax/train.py            # 5 seeds, 2000 iterations
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.example_libraries import optimizers

import era
import era.jax as ej

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))  # examples/python: common.py
from common import (  # noqa: E402
    check_continuous_forwards, finish, fmt, markdown_table, mean_std, measure_overhead, overhead_line, parse_args, plt,
    print_bound_report, write_outputs,
)

NAME = "jax"
ACTION_DIM, HORIZON, STEP_SIZE, GOAL_RANGE = 2, 10, 0.2, 0.5
BATCH, HIDDEN, LR = 128, 64, 3e-3
TARGET_ENTROPY = -0.5 * ACTION_DIM  # SAC-ERA's default H0 (nats)
LOG_STD_MIN, LOG_STD_MAX = -8.0, 0.0
GAUSSIAN_C = 0.5 * math.log(2 * math.pi * math.e)
RESIDUAL_MAX = ACTION_DIM * (GAUSSIAN_C + LOG_STD_MAX) - TARGET_ENTROPY - 1e-4  # keeps K <= 0 (§1)
RESIDUAL_LR = 0.02
EVAL_GOALS = 512


def init_policy(key):
    """MLP (p, g - p) -> (mean [D], raw log-std output [D])."""
    sizes = [2 * ACTION_DIM, HIDDEN, HIDDEN, 2 * ACTION_DIM]
    params = []
    for k, (m, n) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        params.append((jax.random.normal(k, (m, n)) * jnp.sqrt(1.0 / m), jnp.zeros(n)))
    return params


def policy(params, position, goal):
    h = jnp.concatenate([position, goal - position], axis=-1)
    for w, b in params[:-1]:
        h = jnp.tanh(h @ w + b)
    w, b = params[-1]
    out = h @ w + b
    return out[..., :ACTION_DIM], out[..., ACTION_DIM:]


def log_std_head(raw, residual, use_era: bool):
    if use_era:
        return ej.continuous_era(raw, TARGET_ENTROPY, residual, log_std_min=LOG_STD_MIN, log_std_max=LOG_STD_MAX)
    return jnp.clip(raw, LOG_STD_MIN, LOG_STD_MAX)


def rollout(params, residual, goals, key, use_era: bool, deterministic: bool = False):
    """Mean return over the batch and the per-step (mean, log_std) ``[T, B, D]``."""

    def step(position, noise):
        mean, raw = policy(params, position, goals)
        log_std = log_std_head(raw, residual, use_era)
        x = mean if deterministic else mean + jnp.exp(log_std) * noise
        position = position + STEP_SIZE * jnp.tanh(x)
        reward = -jnp.sum((position - goals) ** 2, axis=-1)
        return position, (reward, mean, log_std)

    noise = jax.random.normal(key, (HORIZON,) + goals.shape)
    _, (rewards, means, log_stds) = jax.lax.scan(step, jnp.zeros_like(goals), noise)
    return rewards.sum(0).mean(), (means, log_stds)


def sample_goals(key, n):
    return jax.random.uniform(key, (n, 2), minval=-GOAL_RANGE, maxval=GOAL_RANGE)


def make_train_step(use_era: bool):
    init, update, get_params = optimizers.adam(LR)

    @jax.jit
    def train_step(i, opt_state, residual, key):
        goals_key, noise_key = jax.random.split(key)
        goals = sample_goals(goals_key, BATCH)

        def objective(params):
            mean_return, aux = rollout(params, residual, goals, noise_key, use_era)
            return -mean_return, aux

        (neg_return, (means, log_stds)), grads = jax.value_and_grad(objective, has_aux=True)(get_params(opt_state))
        squashed = ej.tanh_gaussian_entropy(means, log_stds)  # [T, B], nats, no gradient
        if use_era:  # the paper's residual rule: d/d(delta) of delta * (H_squashed - H0)
            residual = jnp.clip(residual - RESIDUAL_LR * (squashed.mean() - TARGET_ENTROPY), 0.0, RESIDUAL_MAX)
        return update(i, grads, opt_state), residual, -neg_return, log_stds, squashed.mean()

    return init, get_params, train_step


def evaluate(params, residual, use_era: bool, seed: int):
    """Mean return on EVAL_GOALS fixed goals: deterministic (tanh of the mean) and sampled."""
    goals = sample_goals(jax.random.PRNGKey(10_000 + seed), EVAL_GOALS)
    key = jax.random.PRNGKey(20_000 + seed)
    det = rollout(params, residual, goals, key, use_era, deterministic=True)[0]
    sampled = rollout(params, residual, goals, key, use_era)[0]
    return float(det), float(sampled)


def train(use_era: bool, seed: int, iterations: int, forwards: list):
    init, get_params, train_step = make_train_step(use_era)
    key = jax.random.PRNGKey(seed)
    key, init_key = jax.random.split(key)
    opt_state, residual = init(init_policy(init_key)), jnp.float32(0.0)
    curves = {"return": [], "gaussian_mean": [], "gaussian_min": [], "squashed_mean": [], "residual": []}
    for i in range(iterations):
        key, step_key = jax.random.split(key)
        used_residual = residual
        opt_state, residual, ret, log_stds, squashed = train_step(i, opt_state, residual, step_key)
        log_stds = np.asarray(log_stds)
        if use_era:
            forwards.append((log_stds, float(used_residual)))
        gaussian = era.gaussian_entropy(log_stds)
        curves["return"].append(float(ret))
        curves["gaussian_mean"].append(float(gaussian.mean()))
        curves["gaussian_min"].append(float(gaussian.min()))
        curves["squashed_mean"].append(float(squashed))
        curves["residual"].append(float(used_residual))
    return curves, evaluate(get_params(opt_state), residual, use_era, seed), (opt_state, residual)


def step_overhead(seed: int = 0):
    """Median jitted training step (rollout, grad, Adam) with the ERA head vs the clipped
    head, from the same initial parameters and the same key."""
    steps = {}
    for use_era in (True, False):
        init, _, train_step = make_train_step(use_era)
        state = {"opt": init(init_policy(jax.random.PRNGKey(seed))), "residual": jnp.float32(0.0)}
        key = jax.random.PRNGKey(seed + 1)

        def step(train_step=train_step, state=state, key=key):
            out = train_step(0, state["opt"], state["residual"], key)
            jax.block_until_ready(out)
            state["opt"], state["residual"] = out[0], out[1]

        steps[use_era] = step
    return measure_overhead(steps[True], steps[False], warmup=10, repeats=200)


def main(argv=None) -> int:
    args = parse_args(__doc__.splitlines()[0], quick_seeds=[0, 1], long_seeds=[0, 1, 2, 3, 4], argv=argv)
    iterations = 400 if args.quick else 2000
    era.set_num_threads(1)
    print(f"point mass, D = {ACTION_DIM}, T = {HORIZON}; seeds {args.seeds}, {iterations} iterations of {BATCH} "
          f"rollouts; ERA target H0 = {TARGET_ENTROPY} nats, log std in [{LOG_STD_MIN}, {LOG_STD_MAX}], "
          f"delta in [0, {RESIDUAL_MAX:.3f}]")
    heads = {"plain": False, "ERA": True}
    results = {name: [] for name in heads}
    forwards = []
    for seed in args.seeds:
        for name, use_era in heads.items():
            curves, (det, sampled), _ = train(use_era, seed, iterations, forwards)
            results[name].append({"seed": seed, "deterministic_return": det, "sampled_return": sampled,
                                  "curves": curves})
            print(f"seed {seed} {name:5s} return: first iteration {curves['return'][0]:.3f}, eval deterministic "
                  f"{det:.3f}, sampled {sampled:.3f}; Gaussian entropy min over training "
                  f"{min(curves['gaussian_min']):.3f}, last {curves['gaussian_mean'][-1]:.3f} nats")

    all_log_std = np.concatenate([ls.reshape(-1, ACTION_DIM) for ls, _ in forwards])
    report = era.check_continuous(all_log_std, TARGET_ENTROPY, residual=0.0, log_std_min=LOG_STD_MIN,
                                  log_std_max=LOG_STD_MAX)
    bound = print_bound_report("ERA policy log stds of every training rollout step, Gaussian entropy vs H0", report)
    per_iteration = check_continuous_forwards(forwards, TARGET_ENTROPY, log_std_min=LOG_STD_MIN,
                                              log_std_max=LOG_STD_MAX)
    holds = report.holds and per_iteration["holds"]
    timing = step_overhead()
    print(f"jitted train step: {overhead_line(timing)}")

    tail = slice(-max(1, iterations // 10), None)
    summary = {name: {
        "deterministic_return": mean_std(r["deterministic_return"] for r in rs),
        "sampled_return": mean_std(r["sampled_return"] for r in rs),
        "min_gaussian_entropy": mean_std(min(r["curves"]["gaussian_min"]) for r in rs),
        "last_gaussian_entropy": mean_std(np.mean(r["curves"]["gaussian_mean"][tail]) for r in rs),
        "last_squashed_entropy": mean_std(np.mean(r["curves"]["squashed_mean"][tail]) for r in rs),
        "last_residual": mean_std(r["curves"]["residual"][-1] for r in rs),
    } for name, rs in results.items()}

    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for i, (name, rs) in enumerate(results.items()):
        for j, r in enumerate(rs):
            c, label = r["curves"], name if j == 0 else None
            axes[0].plot(c["return"], color=f"C{i}", alpha=0.8, label=label)
            axes[1].plot(c["gaussian_min"], color=f"C{i}", label=label and f"{name} (batch min)")
            axes[2].plot(c["squashed_mean"], color=f"C{i}", label=label and f"{name} (batch mean)")
            if heads[name]:
                axes[1].plot(TARGET_ENTROPY + np.asarray(c["residual"]), color="k", lw=0.8, ls="--",
                             label="ERA floor H0 + delta" if j == 0 else None)
    for ax in axes[1:]:
        ax.axhline(TARGET_ENTROPY, color="k", lw=0.8, ls=":", label=f"H0 = {TARGET_ENTROPY}")
    axes[0].set(xlabel="iteration", ylabel="return (sum of T rewards)", title="training return, batch mean")
    axes[1].set(xlabel="iteration", ylabel="nats", title="Gaussian policy entropy per state")
    axes[2].set(xlabel="iteration", ylabel="nats", title="tanh-squashed policy entropy")
    for ax in axes:
        ax.legend(fontsize=8)

    table = markdown_table(
        ["head", "eval return, deterministic", "eval return, sampled", "min Gaussian entropy",
         "Gaussian entropy, last 10%", "squashed entropy, last 10%", "final delta"],
        [[name, fmt(s["deterministic_return"], 4), fmt(s["sampled_return"], 4), fmt(s["min_gaussian_entropy"]),
          fmt(s["last_gaussian_entropy"]), fmt(s["last_squashed_entropy"]),
          fmt(s["last_residual"]) if heads[name] else "-"] for name, s in summary.items()],
    )
    plain, with_era = summary["plain"], summary["ERA"]
    markdown = f"""## JAX: point mass with a continuous-ERA policy ({iterations} iterations, seeds {args.seeds})

D = {ACTION_DIM}, T = {HORIZON}, batch {BATCH}; ERA target H0 = {TARGET_ENTROPY} nats, log std in [{LOG_STD_MIN}, {LOG_STD_MAX}];
returns are sums of T rewards (0 is perfect) on {EVAL_GOALS} fixed evaluation goals; entropies in nats; mean ± std over seeds.

{table}

| bound check (ERA, every rollout step of training) | rows | violations | min entropy (nats) | floor |
| --- | --- | --- | --- | --- |
| Gaussian entropy vs H0 | {bound['rows']} | {bound['violations']} | {bound['min_entropy']:.5f} | {TARGET_ENTROPY} |
| Gaussian entropy vs H0 + delta of that iteration | {per_iteration['rows']} | {per_iteration['violations']} | margin {per_iteration['min_margin']:+.2g} | delta in [{per_iteration['residual_min']:.3f}, {per_iteration['residual_max']:.3f}] |

Jitted train step (median of {timing['repeats']}): {timing['era_ms']:.3f} ms with era.jax.continuous_era vs
{timing['plain_ms']:.3f} ms with a clipped log std: {timing['overhead_pct']:+.1f}%.

Without ERA the policy's Gaussian entropy fell to {fmt(plain['last_gaussian_entropy'])} nats; with ERA it stayed at
{fmt(with_era['last_gaussian_entropy'])} (never below H0 + delta on any of {per_iteration['rows']} rows) and the squashed
entropy at {fmt(with_era['last_squashed_entropy'])} (target {TARGET_ENTROPY}), at a sampled-action return of
{fmt(with_era['sampled_return'], 4)} vs {fmt(plain['sampled_return'], 4)} and a deterministic return of
{fmt(with_era['deterministic_return'], 4)} vs {fmt(plain['deterministic_return'], 4)}.
"""
    write_outputs(args.out, NAME, figure, markdown, {
        "settings": {"seeds": args.seeds, "iterations": iterations, "action_dim": ACTION_DIM, "horizon": HORIZON,
                     "batch": BATCH, "lr": LR, "target_entropy": TARGET_ENTROPY,
                     "log_std_range": [LOG_STD_MIN, LOG_STD_MAX], "residual_lr": RESIDUAL_LR,
                     "residual_max": RESIDUAL_MAX, "quick": args.quick},
        "summary": summary,
        "runs": results,
        "bound_report": bound,
        "bound_per_iteration": per_iteration,
        "step_time": timing,
    })
    return finish(markdown, holds)


if __name__ == "__main__":
    sys.exit(main())
