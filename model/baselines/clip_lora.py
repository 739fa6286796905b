"""``clip_lora``: LoRA (Hu et al., ICLR 2022) on the attention projections of CLIP ViT-L/14, through ``peft``, and a
linear head on the pooled feature: the common parameter-efficient baseline beside GenD and Effort.

The encoder, feature and input are ``clip_ln``'s (``pooler_output`` of ``openai/clip-vit-large-patch14``, 224 px,
CLIP's mean and std). ``peft.inject_adapter_in_model`` puts a rank-``lora-rank`` update, scaled by ``lora-alpha`` /
``lora-rank``, beside each ``lora-targets`` linear layer of every encoder block (``q_proj``, ``k_proj``, ``v_proj``,
``out_proj``: the attention projections); only those updates and the head train. The rank, alpha and dropout are the
LoRA option of GenD's code (yermandy/GenD ``src/config.py``: ``LoRA(rank=1, alpha=32, dropout=0.05, bias="none")``,
applied there to ``out_proj`` alone: ``lora-targets: [out_proj]``); on the four projections they train 196,608 values
of ViT-L/14, about Effort's 196,704.
"""

from __future__ import annotations

from typing import Any

from ..registry import register_model
from .base import ModelConfigError
from .foundation import FOUNDATION_DEFAULTS, FoundationDetector

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


@register_model("clip_lora")
class ClipLora(FoundationDetector):
    family = "clip"
    config_defaults: dict[str, Any] = {
        "name": "clip_lora",
        **FOUNDATION_DEFAULTS,
        "backbone": "openai/clip-vit-large-patch14",
        "lora-rank": 1,
        "lora-alpha": 32.0,
        "lora-dropout": 0.05,
        "lora-targets": list(ATTENTION_PROJECTIONS),
    }

    def adapt(self) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        targets = list(self.config["lora-targets"])
        unknown = sorted(set(targets) - set(ATTENTION_PROJECTIONS))
        if not targets or unknown:
            raise ModelConfigError(
                f"model config key 'lora-targets' of clip_lora must list some of {', '.join(ATTENTION_PROJECTIONS)} "
                f"(CLIP's attention projections); got {targets!r}."
            )
        if self.config["lora-rank"] < 1:
            raise ModelConfigError(
                f"model config key 'lora-rank' of clip_lora must be at least 1; got {self.config['lora-rank']}."
            )
        adapter = LoraConfig(
            r=self.config["lora-rank"],
            lora_alpha=self.config["lora-alpha"],
            lora_dropout=self.config["lora-dropout"],
            target_modules=targets,
            bias="none",
        )
        inject_adapter_in_model(adapter, self.encoder)
        for name, parameter in self.encoder.named_parameters():
            parameter.requires_grad_(".lora_" in name)
