"""A direct forward pass through Llama-family decoders, with the keys and values in the caller's hands.

Hugging Face's ``forward`` rebuilds masks, caches and output objects on every call; for a small model that
bookkeeping costs more than the arithmetic, and it cannot express the two things the fast paths need:

* generation: prefill each distinct prompt once, keep its keys/values once for the G rows of its group, then
  decode into a preallocated key/value buffer (no concatenation per token), dropping finished rows;
* the update: encode a group's shared prompt once and let its G completions attend to that prompt's keys and
  values (gradients flow back into the prompt pass), instead of encoding the prompt G times.

The pass calls the model's own modules (norms, projections, MLP, rotary embedding, LM head), so LoRA layers,
``disable_adapter()``, the weights' dtype and any rotary scaling behave exactly as in the model's ``forward``;
only the attention plumbing is rewritten. It covers the architectures whose decoder layer is exactly
``x + attn(norm(x)); x + mlp(norm(x))`` with rotary attention over all previous tokens (see
:data:`SUPPORTED_MODEL_TYPES`); :meth:`LeanDecoder.of` returns ``None`` for anything else and callers then use the
plain Hugging Face path. tests/engine/test_lean_decoder.py checks each supported type against ``forward``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
"""``config.model_type`` values whose decoder layers :class:`LeanDecoder` reproduces (full attention only)."""

# keys/values of one layer: (layer, new keys, new values) -> (keys, values) the new queries attend to
KVHook = Callable[[int, Tensor, Tensor], tuple[Tensor, Tensor]]
# attention of one layer: (layer, queries, new keys, new values, dropout, scale) -> output [B, heads, q, head_dim]
Attend = Callable[[int, Tensor, Tensor, Tensor, float, float], Tensor]

_SDPA_HAS_GQA = tuple(int(x) for x in torch.__version__.split(".")[:2] if x.isdigit()) >= (2, 5)


def additive_mask(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """A 0 / very-negative float mask from a boolean one (SDPA on CPU is faster with an additive mask)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(
        ~allowed, torch.finfo(dtype).min
    )


def prefill_mask(key_valid: Tensor, dtype: torch.dtype) -> Tensor:
    """[B, 1, L, L] causal mask over left-padded rows (``key_valid`` [B, L] marks real tokens).

    A padding position attends to itself only, so its (unused) output stays finite.
    """
    length = key_valid.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=key_valid.device).tril()
    allowed = causal & key_valid[:, None, None, :]
    allowed |= torch.eye(length, dtype=torch.bool, device=key_valid.device)
    return additive_mask(allowed, dtype)


@dataclass
class LeanDecoder:
    """The modules of a Llama-family causal LM, run layer by layer (see the module docstring)."""

    embed: nn.Module
    layers: list[nn.Module]
    norm: nn.Module
    rotary: nn.Module
    head: nn.Module
    num_kv_heads: int
    head_dim: int
    gradient_checkpointing: bool
    # id(linear module) -> (weight, bias) to use instead of calling it (see folded_adapters)
    folded: dict[int, tuple[Tensor, Tensor | None]] = field(default_factory=dict)
    # id(attention or MLP module) -> (weight, bias, output widths) of its input projections as one product
    fused: dict[int, tuple[Tensor, Tensor | None, tuple[int, ...]]] = field(default_factory=dict)

    @classmethod
    def of(cls, model: nn.Module) -> "LeanDecoder | None":
        """The lean pass for ``model`` (a transformers causal LM or a peft model around one), or ``None``."""
        peft_config = getattr(model, "active_peft_config", None)
        if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
            return None  # prompt tuning injects inputs in PeftModel.forward
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = getattr(base, "config", None)
        if getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
            return None
        if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or ()):
            return None  # sliding-window layers attend to a band, not to every earlier token
        if config.model_type == "mistral" and getattr(config, "sliding_window", None):
            return None
        trunk = getattr(base, "model", None)
        head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
        needed = ("embed_tokens", "layers", "norm", "rotary_emb")
        if trunk is None or head is None or not all(hasattr(trunk, name) for name in needed):
            return None
        for layer in trunk.layers:
            attn = getattr(layer, "self_attn", None)
            parts = ("q_proj", "k_proj", "v_proj", "o_proj")
            if attn is None or not all(hasattr(attn, p) for p in parts) or not hasattr(layer, "mlp"):
                return None
        first = trunk.layers[0].self_attn
        return cls(
            embed=trunk.embed_tokens,
            layers=list(trunk.layers),
            norm=trunk.norm,
            rotary=trunk.rotary_emb,
            head=head,
            num_kv_heads=config.num_key_value_heads,
            head_dim=first.head_dim,
            # transformers flags the trunk (and, in newer versions, each layer) when checkpointing is enabled
            gradient_checkpointing=any(
                getattr(m, "gradient_checkpointing", False) is True for m in (trunk, *trunk.layers)
            ),
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.embed.weight.dtype

    def project(self, hidden: Tensor) -> Tensor:
        """Logits of final hidden states (the LM head)."""
        return self._linear(self.head, hidden)

    @contextlib.contextmanager
    def folded_adapters(self, max_elements: int = 32 * 2**20) -> Iterator[None]:
        """Inside the block (inference only), every LoRA-wrapped linear layer runs as one matrix product: its
        adapter folded into a temporary copy of the weight (W + scale·B·A), or the bare base weight when the
        adapter is disabled. A decode step then costs as many operations as without LoRA. Skipped (modules are
        called as usual) when the copies would hold more than ``max_elements`` numbers."""
        if torch.is_grad_enabled():
            raise RuntimeError("folded_adapters() is for inference: gradients would not reach the adapters")
        modules = [self.head]
        for layer in self.layers:
            attn, mlp = layer.self_attn, layer.mlp
            modules += [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj]
            modules += [getattr(mlp, name) for name in ("gate_proj", "up_proj", "down_proj") if hasattr(mlp, name)]
        plan = {id(m): m for m in modules if _vanilla_lora_linear(m)}
        copies = sum(m.base_layer.weight.numel() for m in plan.values() if not (m.disable_adapters or m.merged))
        if plan and copies <= max_elements:
            for key, module in plan.items():
                base = module.base_layer
                weight = base.weight
                if not (module.disable_adapters or module.merged):
                    weight = weight.clone()
                    for name in module.active_adapters:
                        if name in module.lora_A:
                            weight += module.get_delta_weight(name).to(weight.dtype)
                self.folded[key] = (weight, base.bias)
        try:
            yield
        finally:
            self.folded.clear()

    @contextlib.contextmanager
    def inference_weights(self, max_elements: int = 32 * 2**20) -> Iterator[None]:
        """:meth:`folded_adapters`, and inside it each layer's q/k/v projections run as one matrix product, as do
        its MLP's gate and up projections (their weights concatenated into temporary copies, when those copies
        hold at most ``max_elements`` numbers). A decode step of a small model costs per operation, not per
        number: three products become one."""
        with self.folded_adapters(max_elements):
            plan: list[tuple[nn.Module, list[tuple[Tensor, Tensor | None]]]] = []  # owner, (weight, bias) per part
            for layer in self.layers:
                attn, mlp = layer.self_attn, layer.mlp
                groups = [(attn, [attn.q_proj, attn.k_proj, attn.v_proj])]
                if _gated(mlp):
                    groups.append((mlp, [mlp.gate_proj, mlp.up_proj]))
                for owner, parts in groups:
                    weights = [self._plain_weights(p) for p in parts]
                    if all(w is not None for w in weights):
                        plan.append((owner, weights))
            if sum(w.numel() for _, weights in plan for w, _ in weights) <= max_elements:
                for owner, weights in plan:
                    self.fused[id(owner)] = _concatenated(weights)
            try:
                yield
            finally:
                self.fused.clear()

    def _plain_weights(self, module: nn.Module) -> tuple[Tensor, Tensor | None] | None:
        """(weight, bias) that compute ``module``'s output with F.linear, or None (a module of another kind)."""
        entry = self.folded.get(id(module))
        if entry is not None:
            return entry
        if type(module) is nn.Linear:  # exactly: quantised subclasses keep their own forward
            return module.weight, module.bias
        return None

    def _linear(self, module: nn.Module, x: Tensor) -> Tensor:
        entry = self.folded.get(id(module)) if self.folded else None
        return module(x) if entry is None else F.linear(x, *entry)

    def forward(self, input_ids: Tensor, position_ids: Tensor, attend: Attend) -> Tensor:
        """Final-norm hidden states [B, q, H] of ``input_ids`` [B, q] at ``position_ids`` [B, q].

        ``attend(layer, q, k, v, dropout_p, scale)`` gets the layer's queries [B, heads, q, head_dim] and new
        keys/values [B, kv_heads, q, head_dim] (after the rotary embedding) and returns the attention output
        [B, heads, q, head_dim]: that is where a caller keeps, extends or shares keys/values (see :func:`sdpa`).
        Under autograd with gradient checkpointing enabled on the model, each layer is recomputed in backward.
        """
        hidden = self.embed(input_ids)
        cos, sin = self.rotary(hidden, position_ids)
        use_checkpoint = self.gradient_checkpointing and torch.is_grad_enabled()
        for index, layer in enumerate(self.layers):
            if use_checkpoint:
                hidden = checkpoint(self._layer, index, layer, hidden, cos, sin, attend, use_reentrant=False)
            else:
                hidden = self._layer(index, layer, hidden, cos, sin, attend)
        return self.norm(hidden)

    def _layer(self, index: int, layer: nn.Module, hidden: Tensor, cos: Tensor, sin: Tensor, attend: Attend) -> Tensor:
        attn = layer.self_attn
        x = layer.input_layernorm(hidden)
        batch, length, _ = x.shape
        shape = (batch, length, -1, self.head_dim)
        fused = self.fused.get(id(attn)) if self.fused else None
        if fused is not None and not hasattr(attn, "q_norm"):
            # one product for q, k and v, one rotation for q and k: [B, q, heads + 2 * kv_heads, head_dim]
            weight, bias, (q_width, k_width, _) = fused
            heads = F.linear(x, weight, bias).view(shape)
            n_q, n_qk = q_width // self.head_dim, (q_width + k_width) // self.head_dim
            qk = _rotate(heads[:, :, :n_qk].transpose(1, 2), cos, sin)
            q, k, v = qk[:, :n_q], qk[:, n_q:], heads[:, :, n_qk:].transpose(1, 2)
        else:
            if fused is not None:
                q, k, v = (part.view(shape) for part in F.linear(x, fused[0], fused[1]).split(fused[2], dim=-1))
            else:
                q = self._linear(attn.q_proj, x).view(shape)
                k = self._linear(attn.k_proj, x).view(shape)
                v = self._linear(attn.v_proj, x).view(shape)
            v = v.transpose(1, 2)
            if hasattr(attn, "q_norm"):  # Qwen3 normalises each head before the rotary embedding
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k = _rotate(q.transpose(1, 2), cos, sin), _rotate(k.transpose(1, 2), cos, sin)
        dropout = attn.attention_dropout if attn.training else 0.0
        out = attend(index, q, k, v, dropout, getattr(attn, "scaling", self.head_dim**-0.5))
        hidden = hidden + self._linear(attn.o_proj, out.transpose(1, 2).reshape(batch, length, -1))
        return hidden + self._mlp(layer.mlp, layer.post_attention_layernorm(hidden))

    def _mlp(self, mlp: nn.Module, x: Tensor) -> Tensor:
        fused = self.fused.get(id(mlp)) if self.fused else None
        if fused is not None:  # gate and up in one product (inference_weights)
            gate, up = F.linear(x, fused[0], fused[1]).split(fused[2], dim=-1)
            return self._linear(mlp.down_proj, mlp.act_fn(gate) * up)
        if not self.folded or not _gated(mlp):
            return mlp(x)
        # the gated MLP of every supported architecture: down(act(gate(x)) * up(x))
        gate = mlp.act_fn(self._linear(mlp.gate_proj, x))
        return self._linear(mlp.down_proj, gate * self._linear(mlp.up_proj, x))


def sdpa(mask: Tensor | None, kv: KVHook | None = None) -> Attend:
    """Attention through ``scaled_dot_product_attention`` over the keys/values ``kv(layer, k, v)`` returns
    (default: the new ones only), with the additive ``mask`` broadcastable to [B, heads, q, keys]."""

    def attend(index: int, q: Tensor, k: Tensor, v: Tensor, dropout: float, scale: float) -> Tensor:
        keys, values = kv(index, k, v) if kv is not None else (k, v)
        if _SDPA_HAS_GQA:
            return F.scaled_dot_product_attention(
                q, keys, values, attn_mask=mask, dropout_p=dropout, scale=scale, enable_gqa=True
            )
        groups = q.shape[1] // keys.shape[1]  # older torch: repeat the key/value heads for every query head
        return F.scaled_dot_product_attention(
            q, keys.repeat_interleave(groups, 1), values.repeat_interleave(groups, 1),
            attn_mask=mask, dropout_p=dropout, scale=scale,
        )

    return attend


def _gated(mlp: nn.Module) -> bool:
    """Whether ``mlp`` is the gated MLP of every supported architecture: down(act(gate(x)) * up(x))."""
    return all(hasattr(mlp, name) for name in ("gate_proj", "up_proj", "down_proj", "act_fn"))


def _concatenated(weights: list[tuple[Tensor, Tensor | None]]) -> tuple[Tensor, Tensor | None, tuple[int, ...]]:
    """One linear layer's (weight, bias, output widths) from several that read the same input (missing biases
    count as zeros; no bias at all when none has one)."""
    bias = None
    if any(b is not None for _, b in weights):
        bias = torch.cat([b if b is not None else w.new_zeros(w.shape[0]) for w, b in weights])
    return torch.cat([w for w, _ in weights]), bias, tuple(w.shape[0] for w, _ in weights)


def _vanilla_lora_linear(module: nn.Module) -> bool:
    """A peft LoRA wrapper around an nn.Linear whose adapters are plain low-rank products (no DoRA or other
    variant, no adapter bias): its output is exactly that of one linear layer with the folded weight."""
    base = getattr(module, "base_layer", None)
    if not isinstance(base, nn.Linear) or not hasattr(module, "lora_A") or not hasattr(module, "get_delta_weight"):
        return False
    if getattr(module, "fan_in_fan_out", False) or getattr(module, "lora_variant", {}):
        return False
    return all(module.lora_B[name].bias is None for name in module.lora_B)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # x [B, heads, q, d]; cos/sin [B, q, d] (the rotary module's output, already in x's dtype)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


