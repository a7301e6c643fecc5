"""What the engine reports for one source; light, so a run served from the cache needs no LibCST."""

from __future__ import annotations

from typing import List, Optional, Set

from . import limits
from .records import Factory, record


@record
class Finding:
    code: str
    message: str
    line: int  # 1-based
    column: int  # 1-based
    fixable: bool = False


@record
class Outcome:
    """What one source produced."""

    findings: List[Finding] = Factory(list)
    new_source: Optional[str] = None  # set when a rewrite changed the source
    error: Optional[str] = None
    notes: List[str] = Factory(list)  # how call sites were threaded
    decoders: List[str] = Factory(list)  # names of buggy decoder classes defined here
    # Keys of the other sources whose rewrite this one's depends on: a call of a decoder this run
    # fixes may be given encoder_padding_mask=, so they are written together or not at all.
    needs: Set[str] = Factory(set)
    not_analysed: List["limits.SetAside"] = Factory(list)  # parts of the source set aside
    attention_layers: List[str] = Factory(list)  # the project's attention wrappers defined here
    mask_factories: List[str] = Factory(list)  # tutorial-style mask factories defined here

    def clean(self) -> bool:
        """Nothing to report, fix or follow into other files."""
        return not (self.findings or self.new_source is not None or self.error or self.notes or self.decoders
                    or self.needs or self.not_analysed or self.attention_layers or self.mask_factories)
