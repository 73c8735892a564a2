"""Checks for lab 15 (pre-train, then fine-tune): the task split and mean pooling (``lab15_task``), the LoRA layer,
which parameters train and merging (``lab15_lora``), the weight mapping into ``transformers`` and the corrected
circulating example (``lab15_hf``). All re-exported here, so registry("15") finds them.

torch, transformers and peft are imported inside the checks (a light interpreter imports this module)."""

from __future__ import annotations

from dlcourse.checks.lab15_hf import check_fixed_example, check_hf_state_dict
from dlcourse.checks.lab15_lora import check_lora_linear, check_merge_lora, check_set_trainable
from dlcourse.checks.lab15_task import check_mean_pool, check_split_task

__all__ = ["check_split_task", "check_mean_pool", "check_lora_linear", "check_set_trainable", "check_merge_lora",
           "check_hf_state_dict", "check_fixed_example"]
