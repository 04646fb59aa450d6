"""The tensor math of RL from human feedback: PPO's advantages and clipped losses, DPO's loss, KL estimators.

Every function works on per-token tensors ``B×T`` (B answers, T token positions) with a ``mask`` ``B×T`` that is 1
on the answer's tokens and 0 on the prompt and the padding; an answer's tokens are one contiguous run of a row.

Symbols (the papers' names):
    π, π_ref   the policy being trained and the frozen reference (the SFT model); log π is per answer token
    ρ_t        the probability ratio π(a_t | s_t) / π_old(a_t | s_t) of the policy now and at the rollout
    r_t        per-token reward: −β·(log π − log π_ref) at every answer token, plus the reward model's score
               at the last one (Ziegler et al. 2019, eq. 2; InstructGPT, Ouyang et al. 2022, eq. 2)
    V_t, Â_t   the value head's estimate at token t and the GAE advantage (Schulman et al. 2016)
    ε          the clip range of the ratio (Schulman et al. 2017) and of the value change
    β          the KL coefficient (PPO) or DPO's inverse temperature
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over the positions where ``mask`` is 1 (a scalar; any shapes that broadcast)."""
    return (x * mask).sum() / mask.sum().clamp_min(1)


def whiten(x: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``x`` ``B×T`` scaled to unit variance over the masked positions (and, with ``shift_mean``, zero mean), 0
    elsewhere: PPO's advantage normalisation, so the step size does not depend on the reward's scale."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016, eqs. 11–16): ``B×T`` rewards, values and mask →
    (advantages Â, returns Â + V), both ``B×T`` and 0 off the mask.

        δ_t = r_t + γ V_{t+1} − V_t,        Â_t = δ_t + γλ Â_{t+1}

    with V and Â zero after an answer's last token (the episode ends there)."""
    adv = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_adv = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv[:, t] = (delta + gamma * lam * next_adv) * m
        next_value, next_adv = values[:, t] * m, adv[:, t]
    return adv, (adv + values) * mask


def ppo_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *, clip: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), to minimize: ``B×T`` inputs → (loss, figures).

        L = −E_t[ min(ρ_t Â_t, clip(ρ_t, 1 − ε, 1 + ε) Â_t) ]

    Where the clipped term is the smaller, the gradient is zero: a token whose ratio already moved past 1 ± ε in
    the direction its advantage favours pulls no further. Figures (detached): ``clip_frac``, the share of tokens
    clipped, and ``approx_kl``, ½ E[(log π − log π_old)²], how far the policy moved since the rollout."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        figures = {
            "clip_frac": masked_mean((clipped > unclipped).float(), mask),
            "approx_kl": 0.5 * masked_mean((logp - old_logp) ** 2, mask),
        }
    return loss, figures


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, *, clip: float
) -> torch.Tensor:
    """The value head's clipped regression loss (as in OpenAI baselines' PPO2 and trl): ``B×T`` inputs → scalar.

        V_clip = V_old + clip(V − V_old, −ε, ε),     L_V = ½ E_t[ max((V − R)², (V_clip − R)²) ]

    Where the clipped error is the larger, the gradient is zero: the value moves at most ε per rollout."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def dpo_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, *, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Direct preference optimization (Rafailov et al. 2023, eq. 7): ``B`` sequence log-probs of the chosen answer
    y_w and the rejected y_l under π and π_ref → (loss, implicit rewards of y_w, of y_l), the rewards ``B``.

        r̂(y) = β (log π(y | x) − log π_ref(y | x)),     L = −E[ log σ(r̂(y_w) − r̂(y_l)) ]

    At π = π_ref the loss is log 2; its gradient raises log π(y_w) and lowers log π(y_l), weighted by
    σ(r̂(y_l) − r̂(y_w)), how wrongly the implicit reward orders the pair."""
    reward_chosen = beta * (chosen - ref_chosen)
    reward_rejected = beta * (rejected - ref_rejected)
    loss = -F.logsigmoid(reward_chosen - reward_rejected).mean()
    return loss, reward_chosen.detach(), reward_rejected.detach()


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimates of KL(π ‖ π_ref) from tokens sampled from π (Schulman 2020, "Approximating KL
    divergence"): ``B×T`` → ``B×T``. ``k1`` = log π − log π_ref (unbiased, can be negative; InstructGPT's
    penalty); ``k2`` = ½ (log π − log π_ref)² (biased, low variance); ``k3`` = (r − 1) − log r with r = π_ref / π
    (unbiased and never negative)."""
    log_ratio = logp - ref_logp
    if kind == "k1":
        return log_ratio
    if kind == "k2":
        return 0.5 * log_ratio**2
    if kind == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {kind!r}; k1, k2 or k3")


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """The entropy (nats) of the categorical distribution of each ``…×V`` row of logits: ``…×V`` → ``…``."""
    logp = torch.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1)


def adaptive_kl_coef(coef: float, kl: float, target: float, *, k: float = 0.1) -> float:
    """Ziegler et al. 2019's proportional controller (§2.2), one update after each rollout whose mean KL per
    answer was ``kl`` nats: e = clip(kl / target − 1, −0.2, 0.2); β ← β (1 + K_β e) with K_β = ``k``."""
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return coef * (1.0 + k * error)
