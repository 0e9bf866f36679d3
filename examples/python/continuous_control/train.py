"""Continuous ERA in SAC on gymnasium's Pendulum-v1 (docs/math.md §1), compact PyTorch.

Three agents, same networks and hyper-parameters:
- SAC: the usual entropy-regularised SAC with automatic temperature tuning towards a
  squashed-policy entropy of -dim(A) nats.
- SAC-ERA tanh (the paper): no temperature and no entropy term in the actor or critic loss;
  the policy head is era.torch.ERAContinuous (target H0 = -0.5 * dim(A), log std in [-8, 0])
  with its residual delta learned by residual_loss, actions a = tanh(x). The Gaussian entropy
  of every state is at least H0 + delta; delta is tuned until the squashed entropy reaches H0.
- SAC-ERA truncnorm: the same with the official SAC-ERA code's action distribution, a normal
  with location tanh(mean) truncated to [-1, 1] (era.torch.TruncatedNormal: libera samples it
  and takes its log-probabilities).

Pendulum has dim(A) = 1. With one action dimension the softmax inside continuous ERA has one
entry, so ERA sets log std = H0 + delta - 0.5*log(2*pi*e) for every state: the policy's
entropy is exactly the floor, and only delta moves it. Every ERA actor forward is checked
against the floor (era.check_continuous), and the update's step time is measured with and
without the ERA head.

    python3 examples/python/continuous_control/train.py --quick   # 5000 env steps, 1 seed
    python3 examples/python/continuous_control/train.py           # 20000 env steps, 3 seeds
    python3 examples/python/continuous_control/train.py --quick --floor sampled

--floor sampled adds a fourth agent, SAC-ERA sampled floor: the truncated normal of SAC-ERA
truncnorm, its log stds from era.torch.continuous_era_truncated (docs/math.md, "The sampled
floor"), which lifts each state's truncated-normal entropy itself to H0 (no residual to tune).
Either way the summary checks the truncated-normal entropy of the trained truncated-normal
policies on every state of the replay buffer against H0 (rows below, worst deficit).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import era
import era.torch as et

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/python: common.py
from common import (  # noqa: E402
    check_continuous_forwards, finish, fmt, markdown_table, mean_std, measure_overhead, overhead_line, parse_args, plt,
    print_bound_report, write_outputs,
)

NAME = "continuous_control"
ENV = "Pendulum-v1"
HIDDEN = 128
BATCH = 128
GAMMA = 0.99
POLYAK = 0.005
LR = 1e-3
RESIDUAL_LR = 1e-3
START_STEPS = 1000  # uniform random actions before the first update
SAC_LOG_STD = (-5.0, 2.0)  # the plain SAC head's log-std range (tanh-rescaled)
ERA_LOG_STD = (-8.0, 0.0)  # continuous ERA's clip range (paper / official defaults)
GAUSSIAN_C = 0.5 * math.log(2 * math.pi * math.e)  # entropy of N(0, 1) per dimension
LOG_EVERY = 50  # updates between entropy records
EVAL_EPISODES = 5


def mlp(inputs: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, outputs))


VARIANTS = {  # name: (ERA head, entropy term in the losses, squashing)
    "SAC": (False, True, "tanh"),
    "SAC-ERA tanh": (True, False, "tanh"),
    "SAC-ERA truncnorm": (True, False, "truncated_normal"),
}
PLAIN = (False, False, "tanh")  # SAC-ERA's update without ERA: timing reference only


class Agent:
    """One SAC variant: ``(era, entropy_term, squash)`` as in VARIANTS.

    era: the policy head is era.torch.ERAContinuous with a learned residual (else a plain
        log std: tanh-rescaled to SAC_LOG_STD with the entropy term, clamped to ERA_LOG_STD
        without). entropy_term: SAC's temperature-weighted -log pi in the actor and critic
        losses, temperature tuned towards -dim(A). squash: "tanh" (a = tanh(x)) or
        "truncated_normal" (the official SAC-ERA code: a normal with location tanh(mean)
        truncated to [-1, 1]).
    """

    def __init__(self, obs_dim: int, act_dim: int, variant, seed: int):
        torch.manual_seed(seed)
        self.era, self.entropy_term, self.squash = variant
        self.actor = mlp(obs_dim, 2 * act_dim)
        self.critic = nn.ModuleList([mlp(obs_dim + act_dim, 1) for _ in range(2)])
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=LR)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=LR)
        self.noise = torch.Generator().manual_seed(seed + 1000)
        if self.entropy_term:
            self.target_entropy = -float(act_dim)  # SAC's heuristic, on the squashed policy
            self.log_alpha = torch.zeros((), requires_grad=True)
            self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=LR)
        if self.era:
            self.head = et.ERAContinuous(act_dim, learn_residual=True, log_std_min=ERA_LOG_STD[0],
                                         log_std_max=ERA_LOG_STD[1])
            self.target_entropy = self.head.target_entropy  # -0.5 * act_dim
            self.residual_opt = torch.optim.Adam(self.head.parameters(), lr=RESIDUAL_LR)
            # The largest feasible delta: K = H0 + delta - D*c - D*log_std_max <= 0 (docs/math.md §1).
            # ERAContinuous keeps delta >= 0 but has no upper cap, so the update projects onto it.
            self.residual_max = act_dim * (GAUSSIAN_C + ERA_LOG_STD[1]) - self.target_entropy - 1e-4
        self.era_forwards = []  # (log_std, delta) of every ERA actor forward, for the bound check

    def policy(self, obs: torch.Tensor):
        """(mean, log_std) of the Gaussian before squashing."""
        mean, raw = self.actor(obs).chunk(2, dim=-1)
        if self.era:
            mean, log_std = self.head(mean, raw)
            self.era_forwards.append((log_std.detach().numpy().copy(), self.head.residual.item()))
        elif self.entropy_term:
            lo, hi = SAC_LOG_STD
            log_std = lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1)
        else:
            log_std = raw.clamp(*ERA_LOG_STD)
        return mean, log_std

    def sample(self, obs: torch.Tensor):
        """A reparameterised action in [-1, 1]^D, log pi(a|s), mean, log_std."""
        mean, log_std = self.policy(obs)
        std = log_std.exp()
        if self.squash == "truncated_normal":
            # The official SAC-ERA policy: N(tanh(mean), std^2) truncated to [-1, 1], sampled by
            # libera from uniforms of the torch RNG, reparameterised (docs/math.md 6.2).
            policy = et.TruncatedNormal(torch.tanh(mean), std, -1.0, 1.0)
            action = policy.rsample()
            return action, policy.log_prob(action).sum(-1), mean, log_std
        eps = torch.randn(mean.shape, generator=self.noise)
        x = mean + std * eps
        # log N(x) - sum log(1 - tanh(x)^2), the latter in its stable form (docs/math.md §1)
        log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
                    - 2 * (math.log(2) - x - F.softplus(-2 * x))).sum(-1)
        return torch.tanh(x), log_prob, mean, log_std

    def squashed_entropy(self, mean: torch.Tensor, log_std: torch.Tensor) -> np.ndarray:
        """Per-state entropy (nats) of the distribution the actions are drawn from."""
        m, s = mean.numpy(), log_std.numpy()
        if self.squash == "truncated_normal":
            return era.truncated_normal_entropy(np.tanh(m), s)
        return era.tanh_gaussian_entropy(m, s)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        with torch.no_grad():
            o = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
            if deterministic:
                mean, _ = self.actor(o).chunk(2, dim=-1)
                return torch.tanh(mean)[0].numpy()
            return self.sample(o)[0][0].numpy()

    def q(self, critics, obs, action):
        x = torch.cat([obs, action], dim=-1)
        return torch.min(critics[0](x), critics[1](x)).squeeze(-1)

    def update(self, obs, action, reward, next_obs, done):
        """One update of the critics, the actor and the temperature or residual; returns the
        batch's (mean, log_std), detached."""
        with torch.no_grad():
            next_action, next_log_prob, _, _ = self.sample(next_obs)
            next_q = self.q(self.critic_target, next_obs, next_action)
            if self.entropy_term:
                next_q = next_q - self.log_alpha.exp() * next_log_prob
            target = reward + GAMMA * (1 - done) * next_q
        x = torch.cat([obs, action], dim=-1)
        critic_loss = sum(F.mse_loss(c(x).squeeze(-1), target) for c in self.critic)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        new_action, log_prob, mean, log_std = self.sample(obs)
        actor_loss = -self.q(self.critic, obs, new_action).mean()
        if self.entropy_term:
            actor_loss = actor_loss + (self.log_alpha.exp().detach() * log_prob).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        if self.entropy_term:
            alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        if self.era:  # the paper's residual tuning: delta * (H_squashed - H0)
            residual_loss = self.head.residual_loss(mean, log_std, squash=self.squash)
            self.residual_opt.zero_grad(set_to_none=True)
            residual_loss.backward()
            self.residual_opt.step()
            with torch.no_grad():
                self.head.residual.clamp_(max=self.residual_max)
        with torch.no_grad():
            for p, p_target in zip(self.critic.parameters(), self.critic_target.parameters()):
                p_target.lerp_(p, POLYAK)
        return mean.detach(), log_std.detach()


class Replay:
    def __init__(self, obs_dim, act_dim, size, seed):
        self.obs = np.zeros((size, obs_dim), np.float32)
        self.next_obs = np.zeros((size, obs_dim), np.float32)
        self.action = np.zeros((size, act_dim), np.float32)
        self.reward = np.zeros(size, np.float32)
        self.done = np.zeros(size, np.float32)
        self.n = 0
        self.rng = np.random.default_rng(seed)

    def add(self, obs, action, reward, next_obs, done):
        i = self.n
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.next_obs[i], self.done[i] = next_obs, done
        self.n += 1

    def sample(self, batch):
        idx = self.rng.integers(0, self.n, batch)
        return tuple(torch.from_numpy(a[idx]) for a in (self.obs, self.action, self.reward, self.next_obs, self.done))


def evaluate(agent: Agent, seed: int) -> float:
    env = gym.make(ENV)
    returns = []
    for episode in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=10_000 + seed * 100 + episode)
        total, finished = 0.0, False
        while not finished:
            obs, reward, terminated, truncated, _ = env.step(2.0 * agent.act(obs, deterministic=True))
            total += reward
            finished = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def run(variant, seed: int, steps: int, agent_class=None):
    """Trains one agent; returns its curves, final evaluation return, the agent and its replay."""
    env = gym.make(ENV)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    scale = float(env.action_space.high[0])
    agent = (agent_class or Agent)(obs_dim, act_dim, variant, seed)
    replay = Replay(obs_dim, act_dim, steps, seed)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    episode_return = 0.0
    curves = {"episode_step": [], "episode_return": [], "update_step": [], "gaussian_mean": [], "gaussian_min": [],
              "squashed_mean": [], "squashed_min": [], "residual": []}
    for step in range(1, steps + 1):
        action = rng.uniform(-1, 1, act_dim).astype(np.float32) if step <= START_STEPS else agent.act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(scale * action)
        replay.add(obs, action, reward, next_obs, float(terminated))
        episode_return += reward
        obs = next_obs
        if terminated or truncated:
            curves["episode_step"].append(step)
            curves["episode_return"].append(float(episode_return))
            obs, _ = env.reset()
            episode_return = 0.0
        if step > START_STEPS:
            mean, log_std = agent.update(*replay.sample(BATCH))
            if step % LOG_EVERY == 0:
                gaussian = era.gaussian_entropy(log_std.numpy())
                squashed = agent.squashed_entropy(mean, log_std)
                curves["update_step"].append(step)
                curves["gaussian_mean"].append(float(gaussian.mean()))
                curves["gaussian_min"].append(float(gaussian.min()))
                curves["squashed_mean"].append(float(squashed.mean()))
                curves["squashed_min"].append(float(squashed.min()))
                if agent.era:
                    curves["residual"].append(agent.head.residual.item())
    return curves, evaluate(agent, seed), agent, replay


def step_overhead(replay: Replay, obs_dim: int, act_dim: int, variant):
    """Median SAC-ERA update time vs the same update with the ERA head replaced by a clamped
    log std and no residual loss (same networks, batch, optimizers)."""
    batch = replay.sample(BATCH)
    with_era, plain = Agent(obs_dim, act_dim, variant, 0), Agent(obs_dim, act_dim, PLAIN, 0)

    def era_step():
        with_era.update(*batch)
        with_era.era_forwards.clear()

    return measure_overhead(era_step, lambda: plain.update(*batch), warmup=30, repeats=300)


# ---------------------------------------------------------------------------------------
# The sampled floor (--floor sampled) and the truncated-normal entropy check of both floors

SAMPLED_NAME = "SAC-ERA sampled floor"


class SampledFloorAgent(Agent):
    """SAC-ERA truncnorm whose log stds come from era.torch.continuous_era_truncated with
    location tanh(mean): every state's truncated-normal entropy is at least H0 by
    construction, so there is no residual to learn (delta = 0)."""

    def __init__(self, obs_dim: int, act_dim: int, variant, seed: int):
        super().__init__(obs_dim, act_dim, (False, False, "truncated_normal"), seed)
        self.target_entropy = -0.5 * act_dim

    def policy(self, obs: torch.Tensor):
        mean, raw = self.actor(obs).chunk(2, dim=-1)
        log_std = et.continuous_era_truncated(raw, torch.tanh(mean), self.target_entropy,
                                              log_std_min=ERA_LOG_STD[0], log_std_max=ERA_LOG_STD[1])
        return mean, log_std


def floor_option(argv):
    """(--floor value, the other arguments): "residual" (default) or "sampled"."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--floor", choices=("residual", "sampled"), default="residual")
    known, rest = parser.parse_known_args(argv)
    return known.floor, rest


def sampled_entropy_check(agent: Agent, replay: Replay, target: float) -> dict:
    """The truncated-normal entropy of the trained policy on every state of the replay buffer
    (location tanh(mean) on [-1, 1]) against H0: rows below it and the worst deficit."""
    with torch.no_grad():
        mean, log_std = agent.policy(torch.from_numpy(replay.obs[:replay.n]))
    # the location exactly as the policy samples it (torch.tanh of the float32 mean)
    report = era.check_continuous_truncated(torch.tanh(mean).numpy(), log_std.numpy(), target, tol=0.0,
                                            log_std_min=ERA_LOG_STD[0], log_std_max=ERA_LOG_STD[1])
    return {"rows": int(report.rows), "below": int(report.violations), "worst_deficit": float(report.max_deficit),
            "min_entropy": float(report.min_entropy), "mean_entropy": float(report.mean_entropy)}


def sampled_table(checks: dict, target: float) -> str:
    rows = [[name, c["rows"], c["below"], f"{c['worst_deficit']:.3g}", f"{c['min_entropy']:.4f}",
             f"{c['mean_entropy']:.4f}"] for name, c in checks.items()]
    return (f"Truncated-normal entropy of the trained policies on every replay state, against H0 = {target} "
            "(era.check_continuous_truncated; last seed):\n\n" +
            markdown_table(["agent", "states", "below H0", "worst deficit (nats)", "min entropy", "mean entropy"],
                           rows))


def main(argv=None) -> int:
    floor, argv = floor_option(sys.argv[1:] if argv is None else argv)
    args = parse_args(__doc__.splitlines()[0], quick_seeds=[0], long_seeds=[0, 1, 2], argv=argv)
    steps = 5000 if args.quick else 20000
    torch.set_num_threads(1)
    era.set_num_threads(1)
    env = gym.make(ENV)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    target = -0.5 * act_dim
    era_names = [n for n, v in VARIANTS.items() if v[0]]
    print(f"{ENV}: {steps} env steps, seeds {args.seeds}; SAC-ERA target H0 = {target} nats, "
          f"log std in {list(ERA_LOG_STD)}")

    results = {name: [] for name in VARIANTS}
    forwards = {name: [] for name in era_names}
    replay = None
    for seed in args.seeds:
        for name, variant in VARIANTS.items():
            curves, final, agent, replay = run(variant, seed, steps)
            results[name].append({"seed": seed, "final_return": final, "curves": curves})
            print(f"seed {seed} {name:17s} final return {final:8.1f} (mean of {EVAL_EPISODES} deterministic "
                  f"episodes); entropy min over training: Gaussian {min(curves['gaussian_min']):.3f}, "
                  f"squashed {min(curves['squashed_min']):.3f} nats")
            if agent.era:
                forwards[name] += agent.era_forwards
            if name == "SAC-ERA truncnorm":
                checks = {name: sampled_entropy_check(agent, replay, target)}
        if floor == "sampled":
            curves, final, agent, replay_sampled = run(None, seed, steps, SampledFloorAgent)
            results.setdefault(SAMPLED_NAME, []).append({"seed": seed, "final_return": final, "curves": curves})
            checks[SAMPLED_NAME] = sampled_entropy_check(agent, replay_sampled, target)
            print(f"seed {seed} {SAMPLED_NAME} final return {final:8.1f}; truncated-normal entropy min over "
                  f"training {min(curves['squashed_min']):.3f} nats")
    for name, check in checks.items():
        print(f"{name}: truncated-normal entropy on {check['rows']} replay states: {check['below']} below "
              f"H0 = {target}, worst deficit {check['worst_deficit']:.3g} nats")

    # The bound: every ERA actor forward (updates and acting), against H0 and against H0 + delta.
    bounds, holds = {}, True
    for name in era_names:
        log_std = np.concatenate([ls.reshape(-1, act_dim) for ls, _ in forwards[name]])
        report = era.check_continuous(log_std, target, residual=0.0, log_std_min=ERA_LOG_STD[0],
                                      log_std_max=ERA_LOG_STD[1])
        bounds[name] = {"vs_target": print_bound_report(
            f"{name} policy log stds, every actor forward, Gaussian entropy vs H0", report)}
        bounds[name]["vs_target_plus_residual"] = per_forward = check_continuous_forwards(
            forwards[name], target, log_std_min=ERA_LOG_STD[0], log_std_max=ERA_LOG_STD[1])
        holds &= report.holds and per_forward["holds"]

    timings = {}
    for name in era_names:
        timings[name] = step_overhead(replay, obs_dim, act_dim, VARIANTS[name])
        print(f"{name} update: {overhead_line(timings[name])}")

    summary = {name: {"final_return": mean_std(r["final_return"] for r in runs),
                      "min_gaussian_entropy": mean_std(min(r["curves"]["gaussian_min"]) for r in runs),
                      "last_squashed_entropy": mean_std(np.mean(r["curves"]["squashed_mean"][-10:]) for r in runs),
                      "last_residual": mean_std(r["curves"]["residual"][-1] for r in runs)
                      if VARIANTS.get(name, PLAIN)[0] else None}
               for name, runs in results.items()}
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for i, (name, runs) in enumerate(results.items()):
        for j, r in enumerate(runs):
            c = r["curves"]
            label = name if j == 0 else None
            axes[0].plot(c["episode_step"], c["episode_return"], color=f"C{i}", alpha=0.8, label=label)
            axes[1].plot(c["update_step"], c["gaussian_min"], color=f"C{i}", label=label and f"{name} (batch min)")
            axes[2].plot(c["update_step"], c["squashed_mean"], color=f"C{i}", label=label and f"{name} (batch mean)")
            if VARIANTS.get(name, PLAIN)[0]:
                axes[1].plot(c["update_step"], target + np.asarray(c["residual"]), color=f"C{i}", lw=4, alpha=0.3,
                             label=label and f"{name} floor H0 + delta")
    axes[1].axhline(target, color="k", lw=0.8, ls=":", label=f"H0 = {target}")
    axes[2].axhline(target, color="k", lw=0.8, ls=":", label=f"ERA target H0 = {target}")
    axes[2].axhline(-act_dim, color="C0", lw=0.8, ls=":", label=f"SAC target -dim(A) = {-act_dim}")
    axes[2].set_ylim(bottom=max(axes[2].get_ylim()[0], -8))
    axes[0].set(xlabel="env step", ylabel="training episode return", title=ENV)
    axes[1].set(xlabel="env step", ylabel="nats", title="Gaussian (pre-squash) policy entropy per state")
    axes[2].set(xlabel="env step", ylabel="nats", title="entropy of the sampled (squashed) policy")
    for ax in axes:
        ax.legend(fontsize=7)

    table = markdown_table(
        ["agent", "final return", "min Gaussian entropy (nats)", "squashed entropy, last 10 logs (nats)",
         "final delta"],
        [[name, fmt(s["final_return"], 1), fmt(s["min_gaussian_entropy"]), fmt(s["last_squashed_entropy"]),
          fmt(s["last_residual"]) if s["last_residual"] else "-"] for name, s in summary.items()],
    )
    bound_table = markdown_table(
        ["agent", "rows (all actor forwards)", "violations vs H0", "min Gaussian entropy",
         "violations vs H0 + delta", "smallest margin", "step time with / without ERA"],
        [[name, b["vs_target"]["rows"], b["vs_target"]["violations"], f"{b['vs_target']['min_entropy']:.5f}",
          b["vs_target_plus_residual"]["violations"], f"{b['vs_target_plus_residual']['min_margin']:+.2g}",
          f"{timings[name]['era_ms']:.3f} / {timings[name]['plain_ms']:.3f} ms ({timings[name]['overhead_pct']:+.1f}%)"]
         for name, b in bounds.items()],
    )
    sac, tanh, trunc = (summary[n] for n in VARIANTS)
    sampled = sampled_table(checks, target)
    markdown = f"""## Continuous control: SAC vs SAC-ERA on {ENV} ({steps} env steps, seeds {args.seeds})

Final return: mean of {EVAL_EPISODES} deterministic evaluation episodes after training (mean ± std over seeds).
SAC tunes its temperature towards a squashed entropy of {-act_dim} nats; the SAC-ERA agents have no entropy term,
target H0 = {target} nats, residual delta learned (capped at its feasible maximum
{act_dim * (GAUSSIAN_C + ERA_LOG_STD[1]) - target:.3f}). "Squashed" is the entropy of the distribution actions are drawn
from (tanh of the Gaussian, or the truncated normal).

{table}

Bound check on the log stds of every SAC-ERA actor forward, and update step time (median of
{timings[era_names[0]]['repeats']}, batch {BATCH}, one thread; "without" replaces the ERA head by a clamped log std and
drops the residual loss):

{bound_table}

The Gaussian floor held on every forward of both SAC-ERA agents; the entropy actually sampled is another matter:
with tanh squashing it ended at {fmt(tanh['last_squashed_entropy'])} nats (target {target}) at a return of
{fmt(tanh['final_return'], 1)}, with the official code's truncated normal at {fmt(trunc['last_squashed_entropy'])} nats
and {fmt(trunc['final_return'], 1)}, vs SAC's {fmt(sac['last_squashed_entropy'])} nats and {fmt(sac['final_return'], 1)}.

{sampled}
"""
    write_outputs(args.out, NAME, figure, markdown, {
        "settings": {"env": ENV, "steps": steps, "seeds": args.seeds, "target_entropy": target,
                     "era_log_std_range": ERA_LOG_STD, "sac_log_std_range": SAC_LOG_STD, "hidden": HIDDEN,
                     "batch": BATCH, "lr": LR, "residual_lr": RESIDUAL_LR, "start_steps": START_STEPS,
                     "quick": args.quick, "floor": floor},
        "summary": summary,
        "runs": results,
        "bound_reports": bounds,
        "step_time": timings,
        "floor": floor,
        "sampled_entropy_checks": checks,
    })
    return finish(markdown, holds)


if __name__ == "__main__":
    sys.exit(main())
