"""The tensor math of RLHF (genlab.nn.rl) against hand-computed values and the properties the papers state."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.nn import rl


def test_gae_matches_a_hand_computed_episode():
    # one episode of 3 tokens, reward at the end; γ = 0.9, λ = 0.8:
    # δ2 = 1 − 0.3 = 0.7                 Â2 = 0.7
    # δ1 = 0.9·0.3 − 0.4 = −0.13         Â1 = −0.13 + 0.72·0.7 = 0.374
    # δ0 = 0.9·0.4 − 0.5 = −0.14         Â0 = −0.14 + 0.72·0.374 = 0.12928
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.4, 0.3]])
    adv, ret = rl.gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.8)
    assert torch.allclose(adv, torch.tensor([[0.12928, 0.374, 0.7]]), atol=1e-6)
    assert torch.allclose(ret, adv + values)


def test_gae_sees_only_the_answer_tokens_of_a_row():
    # a prompt position before the answer and padding after it: their rewards and values must not leak in
    rewards = torch.tensor([[5.0, 0.0, 2.0, 7.0]])
    values = torch.tensor([[9.0, 1.0, 0.5, 9.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    adv, ret = rl.gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # δ2 = 2 − 0.5 = 1.5; δ1 = 0.9·0.5 − 1 = −0.55; Â1 = −0.55 + 0.72·1.5 = 0.53
    assert torch.allclose(adv, torch.tensor([[0.0, 0.53, 1.5, 0.0]]), atol=1e-6)
    assert ret[0, 0] == 0 and ret[0, 3] == 0


def test_gae_with_lambda_and_gamma_one_is_the_return_minus_the_value():
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    adv, ret = rl.gae(rewards, values, torch.ones(3, 6), gamma=1.0, lam=1.0)
    to_go = rewards.flip(1).cumsum(1).flip(1)  # Σ_{k ≥ t} r_k
    assert torch.allclose(adv, to_go - values, atol=1e-5)
    assert torch.allclose(ret, to_go, atol=1e-5)


def test_whiten_gives_zero_mean_unit_variance_on_the_mask_only():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 10, generator=g) * 5 + 3
    mask = (torch.rand(4, 10, generator=g) > 0.3).float()
    w = rl.whiten(x, mask)
    on = w[mask.bool()]
    assert abs(on.mean().item()) < 1e-5 and abs(on.var(unbiased=False).item() - 1) < 1e-4
    assert (w[~mask.bool()] == 0).all()
    x2 = x.clone()
    x2[~mask.bool()] = 1e6  # what lies off the mask changes nothing
    assert torch.allclose(rl.whiten(x2, mask), w)
    kept = rl.whiten(x, mask, shift_mean=False)[mask.bool()]  # unit variance, the mean kept (trl's masked_whiten)
    assert kept.mean().item() == pytest.approx(x[mask.bool()].mean().item(), abs=1e-4)
    assert kept.var(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)


def _policy_grad(log_ratio: float, advantage: float, clip: float = 0.2) -> tuple[float, float]:
    logp = torch.tensor([[log_ratio]], requires_grad=True)
    loss, figures = rl.ppo_policy_loss(
        logp, torch.zeros(1, 1), torch.tensor([[advantage]]), torch.ones(1, 1), clip=clip
    )
    loss.backward()
    return logp.grad.item(), figures["clip_frac"].item()


def test_ppo_clipped_surrogate_has_no_gradient_past_the_clip_in_the_favoured_direction():
    # positive advantage: pushing the ratio up pays until 1 + ε, then the gradient vanishes
    grad, clipped = _policy_grad(math.log(1.1), 1.0)
    assert grad == pytest.approx(-1.1) and clipped == 0  # d(−A·ρ)/d log π = −A·ρ
    grad, clipped = _policy_grad(math.log(1.5), 1.0)
    assert grad == 0 and clipped == 1
    # negative advantage: the same below 1 − ε
    assert _policy_grad(math.log(0.9), -1.0)[0] == pytest.approx(0.9)
    assert _policy_grad(math.log(0.5), -1.0) == (0.0, 1.0)
    # the pessimistic bound: a ratio that moved the wrong way is never clipped (its gradient pulls it back)
    assert _policy_grad(math.log(0.5), 1.0)[0] == pytest.approx(-0.5)
    assert _policy_grad(math.log(1.5), -1.0)[0] == pytest.approx(1.5)


def test_ppo_policy_loss_is_minus_the_mean_advantage_at_ratio_one_and_reports_approx_kl():
    adv = torch.tensor([[1.0, -2.0, 4.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, figures = rl.ppo_policy_loss(torch.zeros(1, 3), torch.zeros(1, 3), adv, mask, clip=0.2)
    assert loss.item() == pytest.approx(0.5) and figures["approx_kl"].item() == 0
    _, figures = rl.ppo_policy_loss(torch.tensor([[0.2, -0.2, 9.0]]), torch.zeros(1, 3), adv, mask, clip=0.2)
    assert figures["approx_kl"].item() == pytest.approx(0.5 * 0.04)


def _value_grad(value: float, old: float = 0.0, ret: float = 1.0, clip: float = 0.2) -> float:
    v = torch.tensor([[value]], requires_grad=True)
    rl.clipped_value_loss(v, torch.tensor([[old]]), torch.tensor([[ret]]), torch.ones(1, 1), clip=clip).backward()
    return v.grad.item()


def test_clipped_value_loss_stops_a_value_that_moved_past_the_clip_towards_the_return():
    assert _value_grad(0.1) == pytest.approx(0.1 - 1.0)  # within the clip: ½(V − R)²'s gradient
    assert _value_grad(0.5) == 0  # moved 0.5 > ε towards R = 1: the clipped error is larger, no gradient
    assert _value_grad(-0.5) == pytest.approx(-1.5)  # moved away from R: the unclipped error rules, pulls back


def test_dpo_loss_is_log_2_when_the_policy_is_the_reference_and_its_gradient_prefers_the_chosen():
    g = torch.Generator().manual_seed(2)
    ref_w, ref_l = torch.randn(5, generator=g) * 10, torch.randn(5, generator=g) * 10
    chosen, rejected = ref_w.clone().requires_grad_(), ref_l.clone().requires_grad_()
    loss, r_w, r_l = rl.dpo_loss(chosen, rejected, ref_w, ref_l, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2)) and (r_w == 0).all() and (r_l == 0).all()
    loss.backward()
    # ∂L/∂log π(y_w) = −β σ(0) / B, ∂L/∂log π(y_l) = +β σ(0) / B: descent raises the chosen, lowers the rejected
    assert torch.allclose(chosen.grad, torch.full((5,), -0.1 * 0.5 / 5))
    assert torch.allclose(rejected.grad, torch.full((5,), 0.1 * 0.5 / 5))
    loss2, r_w, r_l = rl.dpo_loss(ref_w + 1, ref_l - 1, ref_w, ref_l, beta=0.1)
    assert loss2.item() == pytest.approx(-math.log(torch.sigmoid(torch.tensor(0.2)).item()))
    assert torch.allclose(r_w - r_l, torch.full((5,), 0.2))


def test_kl_estimators_k1_and_k3_are_unbiased_and_k3_is_never_negative():
    g = torch.Generator().manual_seed(3)
    p_logits, q_logits = torch.randn(6, generator=g), torch.randn(6, generator=g)
    logp, logq = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    exact = (logp.exp() * (logp - logq)).sum().item()
    tokens = torch.multinomial(logp.exp(), 200_000, replacement=True, generator=g)
    for kind in ("k1", "k3"):
        est = rl.kl_penalty(logp[tokens], logq[tokens], kind)
        assert est.mean().item() == pytest.approx(exact, abs=0.02), kind
    assert (rl.kl_penalty(logp[tokens], logq[tokens], "k3") >= 0).all()
    assert (rl.kl_penalty(logp[tokens], logq[tokens], "k2") >= 0).all()
    with pytest.raises(ValueError):
        rl.kl_penalty(logp, logq, "k4")


def test_entropy_of_uniform_logits_is_log_v():
    assert torch.allclose(rl.entropy(torch.zeros(2, 3, 7)), torch.full((2, 3), math.log(7)))


def test_adaptive_kl_coefficient_moves_towards_the_target_by_at_most_two_percent():
    assert rl.adaptive_kl_coef(0.1, 6.0, 6.0) == pytest.approx(0.1)
    assert rl.adaptive_kl_coef(0.1, 60.0, 6.0) == pytest.approx(0.1 * 1.02)  # error clipped at +0.2, K_β = 0.1
    assert rl.adaptive_kl_coef(0.1, 0.0, 6.0) == pytest.approx(0.1 * 0.98)
    assert rl.adaptive_kl_coef(0.1, 6.6, 6.0) == pytest.approx(0.1 * 1.01)
