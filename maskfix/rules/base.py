"""What a rule is and what it sees.

A rule reads the results of the analysis (run once per set of files) and turns them into
problems; a fixable problem carries the edits that fix it.  Rules plan edits with the
primitives of ``maskfix.rewrite``; ``rewrite`` never imports a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import libcst as cst

from ..flow.decoders import CallSite, DecoderClass, ModuleFacts
from ..flow.factories import Factory, LayerClass, layer_classes
from ..flow.hops import Hop, Route, swapped_hops
from ..flow.paths import PathCall, divergent_paths
from ..flow.attention import Signature
from ..flow.values import ModuleValues
from ..rewrite import Edits, Style
from ..symbols import Symbols

Fix = Callable[[Edits, Style], None]


@dataclass
class Problem:
    """One finding before it is placed: where, what, and how to fix it."""

    code: str
    node: cst.CSTNode  # reported at this node's start
    message: str
    fix: Optional[Fix] = None  # None: reported only (manual work)
    key: object = None  # what is wrong (e.g. the decoder), for rules that follow up on another
    anchors: Sequence[cst.CSTNode] = ()  # further nodes whose line may carry ``# noqa``
    home: Optional[str] = None  # the source of the run holding ``node``, when not the one checked


@dataclass
class Context:
    """One source of the run, with what the analysis found in it and across the run."""

    key: str
    module: cst.Module
    facts: ModuleFacts
    factories: List[Factory]  # defined in this source
    sites: List[CallSite]  # calls of known decoders in this source
    sites_of: Callable[[DecoderClass], List[Tuple[str, CallSite]]]  # every call, run-wide
    where: Callable[[str, cst.CSTNode], Tuple[int, int]]  # (source key, node) -> line, column
    suppressed: Callable[..., bool]  # (code, *nodes) -> a ``# noqa`` covers it here
    notes: List[str] = field(default_factory=list)  # how call sites were threaded
    # also those imported from the run, and masks built in place by the contract (Factory.site)
    visible_factories: List[Factory] = field(default_factory=list)
    attentions: Dict[str, Signature] = field(default_factory=dict)  # the run's attention layers visible here
    modules: Dict[str, cst.Module] = field(default_factory=dict)  # every source of the run, by key
    style: Optional[Style] = None  # how new code is written here; the whole file's, even when sliced
    # the run's other sources: (key, module, names it imports from others; "*" after a star import)
    others: Sequence[Tuple[str, cst.Module, Set[str]]] = ()
    symbols: Optional[Symbols] = None  # the run's classes and functions, as each source sees them
    peers: Dict[str, "Context"] = field(default_factory=dict)  # every source's context, by key
    values_of: Callable[[str], Optional[ModuleValues]] = lambda key: None  # the run's values, by source key
    computed: Dict[str, object] = field(default_factory=dict, repr=False)

    def values(self) -> ModuleValues:
        """The abstract mask values of this source, followed into the run's other sources (the
        engine's one interpretation of the run)."""
        return self.values_of(self.key)

    def layer_classes(self) -> Dict[str, LayerClass]:
        """The layer classes this source can use: its own and those it imports from the run."""
        return self._once("layer_classes", lambda: layer_classes(self.module, self.symbols, self.key))

    def swapped_hops(self) -> List[Tuple[Route, Hop]]:
        """The hops where the factories' two decoder masks exchange places on their way down."""
        return self._once("hops", lambda: swapped_hops(self.module, self.visible_factories, self.layer_classes()))

    def divergent_paths(self) -> List[Tuple[PathCall, PathCall]]:
        """``(wrong, right)`` calls of one decoder that build its cross-attention mask differently."""
        return self._once("paths", lambda: divergent_paths(self.module, self.visible_factories or self.factories,
                                                           self.layer_classes()))

    def _once(self, what: str, compute: Callable[[], object]):
        # each fact of the analysis is computed once per source, whichever rules ask for it
        if what not in self.computed:
            self.computed[what] = compute()
        return self.computed[what]


# keys of the fixable, unsuppressed problems of each code, run-wide
Flagged = Dict[str, Set[int]]


class Rule:
    """One diagnostic code.

    ``VALID`` sources must yield no finding of this code and ``INVALID`` sources at least one;
    the test suite runs both.
    """

    code: str = ""
    name: str = ""
    summary: str = ""  # one sentence: SARIF and ``CODES``
    description: str = ""  # the README's "meaning" column
    fixed: str = ""  # the README's "fixed by rewrite" column
    explanation: str = ""  # a short before/after
    requires: Sequence[str] = ()  # codes whose problems this rule follows up on
    VALID: Sequence[str] = ()
    INVALID: Sequence[str] = ()

    def check(self, ctx: Context) -> Iterable[Problem]:
        """Problems in one source."""
        return ()

    def follow(self, ctx: Context, flagged: Flagged, edits: Edits) -> Iterable[Problem]:
        """Second pass, once every source has been checked (e.g. call sites of fixed decoders)."""
        return ()
