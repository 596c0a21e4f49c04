"""The optimiser: AdamW, with float32 master weights when the trained weights are bfloat16 / float16.

Full fine-tuning on CUDA loads the model in bfloat16. A plain AdamW over those parameters keeps its moments in
bfloat16 and applies each update to bfloat16 weights, whose 8-bit mantissa rounds away any change smaller than
1/256 of the weight: at the learning rates RL uses (1e-6 .. 1e-5) most updates vanish. Here the optimiser owns
a float32 copy of every low-precision parameter (the master weight) and float32 moments; gradients are moved
into float32 after every micro-batch (so accumulation is float32 too), the update is applied to the master, and
the model's weights are the master rounded to their dtype. The masters are part of the optimiser's state dict,
so a resumed run continues from the exact float32 values. Float32 parameters (CPU runs, LoRA adapters, which
peft keeps in float32) are updated in place as usual.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

LOW_PRECISION = (torch.bfloat16, torch.float16)


class MasterWeightAdamW(torch.optim.AdamW):
    """AdamW whose parameters are float32 masters of the model's low-precision parameters.

    ``param_groups`` hold the masters (float32), so gradient clipping and learning-rate schedules apply to them.
    Call :meth:`collect_gradients` after each ``backward()``; :meth:`step` calls it too.
    """

    def __init__(self, params: Iterable[Tensor], **kwargs: Any) -> None:
        model_params = list(params)
        if any(isinstance(p, dict) for p in model_params):
            raise TypeError("MasterWeightAdamW takes a flat list of parameters, not parameter groups")
        pairs, optimised = [], []
        for p in model_params:
            if p.dtype in LOW_PRECISION:
                master = p.detach().clone().float().requires_grad_(True)
                pairs.append((p, master))
                optimised.append(master)
            else:
                optimised.append(p)
        super().__init__(optimised, **kwargs)
        self.pairs: list[tuple[Tensor, Tensor]] = pairs  # (model parameter, float32 master)

    @torch.no_grad()
    def collect_gradients(self) -> None:
        """Add each low-precision parameter's gradient to its master's (in float32) and clear it."""
        for p, master in self.pairs:
            if p.grad is None:
                continue
            if master.grad is None:
                master.grad = p.grad.float()
            else:
                master.grad.add_(p.grad)
            p.grad = None

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        self.collect_gradients()
        loss = super().step(closure)
        for p, master in self.pairs:
            p.copy_(master)  # rounds to the model's dtype
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=set_to_none)
        for p, _ in self.pairs:
            p.grad = None

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["master_weights"] = [master.detach().clone() for _, master in self.pairs]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        masters = state.pop("master_weights", None)
        if masters is not None and len(masters) != len(self.pairs):
            raise ValueError(f"optimiser state has {len(masters)} master weights, the model {len(self.pairs)}")
        super().load_state_dict(state)
        if masters is None:  # a checkpoint from a plain AdamW: start from the weights as loaded
            masters = [p.detach().float() for p, _ in self.pairs]
        with torch.no_grad():
            for (p, master), saved in zip(self.pairs, masters):
                master.copy_(saved)
                p.copy_(master)


def make_adamw(params: Iterable[Tensor], **kwargs: Any) -> torch.optim.Optimizer:
    """AdamW over ``params``; :class:`MasterWeightAdamW` when any of them is bfloat16 or float16."""
    params = list(params)
    if any(p.dtype in LOW_PRECISION for p in params):
        return MasterWeightAdamW(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


def optimised_parameters(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """The tensors the optimiser updates (masters where it keeps them): what gradient clipping must see."""
    return [p for group in optimizer.param_groups for p in group["params"]]
