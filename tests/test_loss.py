"""GRPO math checked against plain-Python references (loops over floats, nothing vectorised)."""

from __future__ import annotations

import math

import pytest
import torch

from rlstruct.engine.loss import LOSS_TYPES, group_advantages, kl_k3, policy_loss

EPS_LOW, EPS_HIGH = 0.2, 0.28


# ---------------------------------------------------------------- references (python floats only)


def ref_advantages(rewards: list[float], group_size: int, scale: bool, eps: float) -> tuple[list[float], list[bool]]:
    advantages: list[float] = []
    flags: list[bool] = []
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        mean = sum(group) / len(group)
        flat = max(group) - min(group) <= 1e-8
        flags.append(flat)
        for r in group:
            if flat:
                advantages.append(0.0)
            elif scale:
                std = math.sqrt(sum((x - mean) ** 2 for x in group) / (len(group) - 1))
                advantages.append((r - mean) / (std + eps))
            else:
                advantages.append(r - mean)
    return advantages, flags


def ref_k3(logp: float, ref: float) -> float:
    d = ref - logp
    return math.exp(d) - d - 1.0


def ref_policy_loss(logp, old, ref, adv, mask, *, eps_low, eps_high, beta, loss_type, n_seq, n_tok, max_len):
    """Returns (loss, kl mean, clip fraction, ratio mean) from nested lists of floats."""
    total = 0.0
    kl_sum = clipped = ratio_sum = 0.0
    count = 0
    for i in range(len(logp)):
        seq_sum, seq_count = 0.0, 0
        for t in range(len(logp[i])):
            if not mask[i][t]:
                continue
            ratio = math.exp(logp[i][t] - old[i][t])
            a = adv[i]
            clipped_ratio = min(max(ratio, 1.0 - eps_low), 1.0 + eps_high)
            surrogate = min(ratio * a, clipped_ratio * a)
            kl = ref_k3(logp[i][t], ref[i][t]) if ref is not None else 0.0
            seq_sum += -(surrogate - beta * kl)
            seq_count += 1
            kl_sum += kl
            ratio_sum += ratio
            if (ratio < 1.0 - eps_low and a < 0) or (ratio > 1.0 + eps_high and a > 0):
                clipped += 1
        count += seq_count
        if loss_type == "grpo":
            total += seq_sum / seq_count if seq_count else 0.0
        else:
            total += seq_sum
    if loss_type == "grpo":
        loss = total / n_seq
    elif loss_type in ("bnpo", "dapo"):
        loss = total / n_tok if n_tok else 0.0  # nothing counts: documented 0, not NaN
    else:
        loss = total / (n_seq * max_len)
    n = max(count, 1)
    return loss, kl_sum / n, clipped / n, ratio_sum / n


# ---------------------------------------------------------------- random batches


def make_batch(seed: int, batch: int = 6, length: int = 7, drift: float = 0.0, dtype=torch.float64):
    """Right-padded completions with varied lengths (one fully masked). drift > 0 makes old_logp != logp."""
    g = torch.Generator().manual_seed(seed)
    logp = -3.0 * torch.rand(batch, length, generator=g, dtype=dtype)
    old = logp + drift * torch.randn(batch, length, generator=g, dtype=dtype) if drift else logp.clone()
    ref = logp + 0.3 * torch.randn(batch, length, generator=g, dtype=dtype)
    adv = torch.randn(batch, generator=g, dtype=dtype)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[batch // 2] = 0  # a sequence with nothing to learn from must not produce NaN
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    return logp, old, ref, adv, mask


def run_both(logp, old, ref, adv, mask, loss_type, beta, n_seq=None, n_tok=None, max_len=None):
    n_seq = n_seq if n_seq is not None else logp.shape[0]
    n_tok = n_tok if n_tok is not None else int(mask.sum())
    max_len = max_len if max_len is not None else logp.shape[1]
    kwargs = dict(eps_low=EPS_LOW, eps_high=EPS_HIGH, beta=beta, loss_type=loss_type)
    loss, stats = policy_loss(
        logp, old, ref, adv, mask,
        epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH, beta=beta, loss_type=loss_type,
        n_sequences=n_seq, n_tokens=n_tok, max_completion_length=max_len,
    )  # fmt: skip
    expected = ref_policy_loss(
        logp.tolist(), old.tolist(), None if ref is None else ref.tolist(), adv.tolist(), mask.tolist(),
        n_seq=n_seq, n_tok=n_tok, max_len=max_len, **kwargs,
    )  # fmt: skip
    return loss, stats, expected


# ---------------------------------------------------------------- advantages


@pytest.mark.parametrize("scale", [True, False])
@pytest.mark.parametrize("group_size", [2, 4, 8])
@pytest.mark.parametrize("seed", range(3))
def test_group_advantages_match_reference(scale, group_size, seed):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.rand(5 * group_size, generator=g, dtype=torch.float64)
    adv, flat = group_advantages(rewards, group_size, scale_rewards=scale)
    exp_adv, exp_flat = ref_advantages(rewards.tolist(), group_size, scale, 1e-4)
    assert adv.shape == (5 * group_size,) and flat.shape == (5,)
    assert adv.tolist() == pytest.approx(exp_adv, rel=1e-9, abs=1e-12)
    assert flat.tolist() == exp_flat
    # Within every group the advantages are centred.
    assert adv.view(5, group_size).sum(dim=1).abs().max() < 1e-9


def test_group_advantages_layout_is_group_contiguous():
    rewards = torch.tensor([0.0, 1.0, 10.0, 30.0])  # two groups of 2: (0, 1) and (10, 30)
    adv, _ = group_advantages(rewards, 2, scale_rewards=False)
    assert adv.tolist() == [-0.5, 0.5, -10.0, 10.0]


def test_zero_spread_groups_get_exactly_zero_and_are_flagged():
    rewards = torch.tensor(
        [1.0, 1.0, 1.0, 1.0,  # flat
         0.0, 1.0, 0.0, 1.0,  # informative
         0.5, 0.5 + 1e-10, 0.5, 0.5,  # flat within tolerance
         0.0, 0.0, 0.0, 0.0]  # flat at zero
    )  # fmt: skip
    for scale in (True, False):
        adv, flat = group_advantages(rewards, 4, scale_rewards=scale)
        assert flat.tolist() == [True, False, True, True]
        groups = adv.view(4, 4)
        assert torch.equal(groups[flat], torch.zeros(3, 4))
        assert (groups[1] != 0).all()
    adv, _ = group_advantages(rewards, 4, scale_rewards=True)
    std = math.sqrt(4 * 0.25 / 3)  # unbiased std of (0, 1, 0, 1)
    assert adv[4:8].tolist() == pytest.approx([-0.5 / (std + 1e-4), 0.5 / (std + 1e-4)] * 2)


def test_group_size_one_is_all_zero_not_nan():
    adv, flat = group_advantages(torch.tensor([0.3, 0.9, 0.1]), 1)
    assert torch.equal(adv, torch.zeros(3)) and flat.all()


def test_group_advantages_integer_rewards_and_bad_shapes():
    adv, _ = group_advantages(torch.tensor([0, 1, 1, 1]), 2, scale_rewards=False)
    assert adv.dtype == torch.float32 and adv.tolist() == [-0.5, 0.5, 0.0, 0.0]
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(5), 2)
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(4), 0)


# ---------------------------------------------------------------- k3 KL


def test_kl_k3_matches_reference_and_is_non_negative():
    g = torch.Generator().manual_seed(0)
    logp = -5.0 * torch.rand(200, generator=g, dtype=torch.float64)
    ref = -5.0 * torch.rand(200, generator=g, dtype=torch.float64)
    kl = kl_k3(logp, ref)
    assert kl.tolist() == pytest.approx([ref_k3(a, b) for a, b in zip(logp.tolist(), ref.tolist())], rel=1e-12)
    assert (kl >= 0).all()
    assert torch.equal(kl_k3(logp, logp), torch.zeros_like(logp))


# ---------------------------------------------------------------- policy loss vs reference


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("seed", range(3))
def test_policy_loss_matches_reference_single_iteration(loss_type, beta, seed):
    logp, old, ref, adv, mask = make_batch(seed)
    loss, stats, (exp_loss, exp_kl, exp_clip, exp_ratio) = run_both(logp, old, ref, adv, mask, loss_type, beta)
    assert loss.item() == pytest.approx(exp_loss, rel=1e-10, abs=1e-12)
    assert stats["kl"].item() == pytest.approx(exp_kl, rel=1e-10)
    # num_iterations == 1: ratio is exactly 1, nothing is clipped.
    assert stats["clip_fraction"].item() == 0.0 == exp_clip
    assert stats["ratio_mean"].item() == pytest.approx(1.0) == pytest.approx(exp_ratio)
    assert stats["n_tokens"].item() == mask.sum().item()


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("seed", range(4))
def test_policy_loss_with_active_clipping_matches_reference(loss_type, seed):
    # num_iterations > 1: the policy moved since sampling, ratios spread well beyond [0.8, 1.28].
    logp, old, ref, adv, mask = make_batch(seed, batch=8, length=9, drift=0.5)
    loss, stats, (exp_loss, exp_kl, exp_clip, exp_ratio) = run_both(logp, old, ref, adv, mask, loss_type, 0.04)
    assert stats["clip_fraction"].item() > 0.05  # clipping really happens in this test
    assert stats["clip_fraction"].item() == pytest.approx(exp_clip, rel=1e-12)
    assert stats["clip_low_fraction"] + stats["clip_high_fraction"] == pytest.approx(stats["clip_fraction"].item())
    assert stats["clip_low_fraction"] > 0 and stats["clip_high_fraction"] > 0
    assert loss.item() == pytest.approx(exp_loss, rel=1e-10, abs=1e-12)
    assert stats["kl"].item() == pytest.approx(exp_kl, rel=1e-10)
    assert stats["ratio_mean"].item() == pytest.approx(exp_ratio, rel=1e-10)


def test_clipping_changes_the_loss():
    # Guards the reference itself: the same batch with huge clip range must give a different loss.
    logp, old, ref, adv, mask = make_batch(0, batch=8, length=9, drift=0.5)
    common = dict(beta=0.0, loss_type="bnpo", n_sequences=8, n_tokens=int(mask.sum()), max_completion_length=9)
    clipped, _ = policy_loss(logp, old, None, adv, mask, epsilon_low=0.2, epsilon_high=0.2, **common)
    unclipped, _ = policy_loss(logp, old, None, adv, mask, epsilon_low=1.0, epsilon_high=1e6, **common)
    assert abs(clipped.item() - unclipped.item()) > 1e-3


def test_dapo_and_bnpo_use_the_supplied_token_normaliser():
    logp, old, ref, adv, mask = make_batch(1)
    for loss_type in ("bnpo", "dapo"):
        local, _, _ = run_both(logp, old, ref, adv, mask, loss_type, 0.0, n_tok=int(mask.sum()))
        wider, _, _ = run_both(logp, old, ref, adv, mask, loss_type, 0.0, n_tok=4 * int(mask.sum()))
        assert wider.item() == pytest.approx(local.item() / 4)


# ---------------------------------------------------------------- gradients


def _ref_loss_of(values, shape, old, ref, adv, mask, loss_type, beta, n_seq, n_tok, max_len):
    rows = [values[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]
    return ref_policy_loss(
        rows, old, ref, adv, mask, eps_low=EPS_LOW, eps_high=EPS_HIGH, beta=beta, loss_type=loss_type,
        n_seq=n_seq, n_tok=n_tok, max_len=max_len,
    )[0]  # fmt: skip


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("drift", [0.0, 0.5])
def test_gradient_matches_finite_differences_of_reference(loss_type, drift):
    logp, old, ref, adv, mask = make_batch(7, batch=4, length=6, drift=drift)
    n_seq, n_tok, max_len = 4, int(mask.sum()), 6
    x = logp.clone().requires_grad_(True)
    loss, stats = policy_loss(
        x, old, ref, adv, mask, epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH, beta=0.04, loss_type=loss_type,
        n_sequences=n_seq, n_tokens=n_tok, max_completion_length=max_len,
    )  # fmt: skip
    loss.backward()
    if drift:
        assert stats["clip_fraction"] > 0  # the zero-gradient clipped branch is exercised
    flat = logp.flatten().tolist()
    args = (logp.shape, old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), loss_type, 0.04, n_seq, n_tok, max_len)
    h = 1e-6
    numeric = []
    for k in range(len(flat)):
        up, down = list(flat), list(flat)
        up[k] += h
        down[k] -= h
        numeric.append((_ref_loss_of(up, *args) - _ref_loss_of(down, *args)) / (2 * h))
    assert x.grad.flatten().tolist() == pytest.approx(numeric, abs=1e-7)
    assert torch.all(x.grad[~mask] == 0)


def test_single_iteration_gradient_is_the_policy_gradient():
    # ratio == 1 and beta == 0: d loss / d logp_t = -A_i / normaliser on every counted token.
    logp, old, _, adv, mask = make_batch(3)
    x = logp.clone().requires_grad_(True)
    n_tok = int(mask.sum())
    loss, _ = policy_loss(
        x, x.detach(), None, adv, mask, epsilon_low=0.2, epsilon_high=0.2, beta=0.0, loss_type="dapo",
        n_sequences=6, n_tokens=n_tok, max_completion_length=7,
    )  # fmt: skip
    loss.backward()
    expected = (-adv.unsqueeze(1) / n_tok).expand_as(x) * mask
    assert torch.allclose(x.grad, expected, atol=1e-12)


# ---------------------------------------------------------------- micro-batching


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("splits", [[3, 5], [1, 2, 2, 3], [8]])
def test_micro_batches_sum_to_full_batch(loss_type, splits):
    logp, old, ref, adv, mask = make_batch(11, batch=8, length=9, drift=0.4)
    common = dict(
        epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH, beta=0.04, loss_type=loss_type,
        n_sequences=8, n_tokens=int(mask.sum()), max_completion_length=9,
    )  # fmt: skip
    full_x = logp.clone().requires_grad_(True)
    full, _ = policy_loss(full_x, old, ref, adv, mask, **common)
    full.backward()

    micro_x = logp.clone().requires_grad_(True)
    total = 0.0
    start = 0
    for size in splits:
        part = slice(start, start + size)
        piece, _ = policy_loss(micro_x[part], old[part], ref[part], adv[part], mask[part], **common)
        piece.backward()  # gradient accumulation: no rescaling between steps
        total += piece.item()
        start += size
    assert total == pytest.approx(full.item(), rel=1e-12, abs=1e-14)
    assert torch.allclose(micro_x.grad, full_x.grad, rtol=1e-12, atol=1e-15)


def test_tensor_normalisers_are_accepted():
    logp, old, ref, adv, mask = make_batch(2)
    as_int, _, _ = run_both(logp, old, ref, adv, mask, "dapo", 0.04)
    as_tensor, _ = policy_loss(
        logp, old, ref, adv, mask, epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH, beta=0.04, loss_type="dapo",
        n_sequences=torch.tensor(6), n_tokens=mask.sum(), max_completion_length=7,
    )  # fmt: skip
    assert as_tensor.item() == pytest.approx(as_int.item(), rel=1e-12)


# ---------------------------------------------------------------- beta 0, masking, edge cases


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_beta_zero_needs_no_reference_model(loss_type):
    logp, old, ref, adv, mask = make_batch(4, drift=0.3)
    without, stats_without, (expected, _, _, _) = run_both(logp, old, None, adv, mask, loss_type, 0.0)
    with_ref, stats_with, _ = run_both(logp, old, ref, adv, mask, loss_type, 0.0)
    assert without.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert without.item() == with_ref.item()  # beta 0: the reference does not enter the loss
    assert stats_without["kl"].item() == 0.0
    assert stats_with["kl"].item() > 0.0  # still reported when available
    with pytest.raises(ValueError):
        run_both(logp, old, None, adv, mask, loss_type, 0.1)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_masked_out_tokens_have_no_effect(loss_type):
    logp, old, ref, adv, mask = make_batch(5, drift=0.3)
    x1 = logp.clone().requires_grad_(True)
    loss1, stats1, _ = run_both(x1, old, ref, adv, mask, loss_type, 0.04)
    loss1.backward()

    junk = torch.tensor([50.0, -1e4, float("inf"), float("-inf"), float("nan")], dtype=logp.dtype)
    fill = junk.repeat(logp.numel() // len(junk) + 1)[: logp.numel()].view_as(logp)
    garbled = [torch.where(mask, t, fill.roll(k)) for k, t in enumerate((logp, old, ref))]
    x2 = garbled[0].clone().requires_grad_(True)
    loss2, stats2, _ = run_both(x2, garbled[1], garbled[2], adv, mask, loss_type, 0.04)
    loss2.backward()

    assert loss2.item() == loss1.item()
    assert torch.equal(x2.grad, x1.grad)
    assert torch.all(x2.grad[~mask] == 0)
    for key in stats1:
        assert stats2[key].item() == stats1[key].item(), key


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_fully_masked_batch_is_zero_not_nan(loss_type):
    logp, old, ref, adv, _ = make_batch(6)
    mask = torch.zeros_like(logp, dtype=torch.bool)
    x = logp.clone().requires_grad_(True)
    loss, stats, _ = run_both(x, old, ref, adv, mask, loss_type, 0.04, n_tok=0)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert all(torch.isfinite(v) for v in stats.values())


def test_float_mask_and_low_precision_inputs():
    logp, old, ref, adv, mask = make_batch(8, drift=0.3)
    expected, _, _ = run_both(logp, old, ref, adv, mask, "grpo", 0.04)
    got, _, _ = run_both(
        logp.bfloat16(), old.bfloat16(), ref.bfloat16(), adv.bfloat16(), mask.float(), "grpo", 0.04
    )
    assert got.dtype == torch.float32  # computed in at least float32
    assert got.item() == pytest.approx(expected.item(), abs=5e-2)


def test_policy_loss_rejects_bad_arguments():
    logp, old, ref, adv, mask = make_batch(0)
    common = dict(epsilon_low=0.2, epsilon_high=0.2, beta=0.0, n_sequences=6, n_tokens=10, max_completion_length=7)
    with pytest.raises(ValueError):
        policy_loss(logp, old, ref, adv, mask, loss_type="ppo", **common)
    with pytest.raises(ValueError):
        policy_loss(logp, old, ref, adv[:-1], mask, loss_type="grpo", **common)
    with pytest.raises(ValueError):
        policy_loss(logp, old[:, :-1], ref, adv, mask, loss_type="grpo", **common)
