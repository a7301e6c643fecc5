"""The rules, one module per code.  Adding a rule means adding a module here and its fixtures."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from . import (
    mf001_decoder_mask_on_cross_attention,
    mf002_untraced_call_site,
    mf003_causal_cross_attention,
    mf004_cross_mask_from_target,
    mf005_bare_lookahead,
    mf006_swapped_mask_slots,
    mf007_lazy_compute_mask,
    mf008_non_causal_self_attention,
    mf009_inverted_mask_polarity,
    mf010_masks_swapped_on_the_way,
    mf011_cross_mask_wrong_on_one_path,
    mf012_mask_cannot_arrive,
)
from .base import Context, Flagged, Problem, Rule

RULES: Dict[str, Rule] = {
    module.RULE.code: module.RULE
    for module in (
        mf001_decoder_mask_on_cross_attention,
        mf002_untraced_call_site,
        mf003_causal_cross_attention,
        mf004_cross_mask_from_target,
        mf005_bare_lookahead,
        mf006_swapped_mask_slots,
        mf007_lazy_compute_mask,
        mf008_non_causal_self_attention,
        mf009_inverted_mask_polarity,
        mf010_masks_swapped_on_the_way,
        mf011_cross_mask_wrong_on_one_path,
        mf012_mask_cannot_arrive,
    )
}


def is_selected(code: str, select: Optional[Sequence[str]]) -> bool:
    """Whether ``code`` is chosen by ``select`` (codes or prefixes; empty or None: every code)."""
    return not select or any(code.startswith(s.strip().upper()) for s in select)


def active_rules(select: Optional[Sequence[str]]) -> List[Rule]:
    """The selected rules plus the rules they follow up on, in code order."""
    wanted = {code for code in RULES if is_selected(code, select)}
    todo = list(wanted)
    while todo:
        for dep in RULES[todo.pop()].requires:
            if dep not in wanted:
                wanted.add(dep)
                todo.append(dep)
    return [RULES[code] for code in sorted(wanted)]


__all__ = ["RULES", "Context", "Flagged", "Problem", "Rule", "active_rules", "is_selected"]
