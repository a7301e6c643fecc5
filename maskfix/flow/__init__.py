"""The analysis: where the values reaching an attention call come from.

Run once per set of files (``engine``); the rules only query its results.

- ``reaching``: which bindings of a local reach each point of a function, and which parameters
  a value depends on (``roots``).
- ``values``: the abstract interpreter of masks: what a value is made of (padding of the source
  or the target, causal, all ones), its polarity, form, rank and axes, and the sequences it is
  computed from; function summaries, ``self`` attributes, layer call parameters bound from the
  calls of the layer, across the sources of a run.
- ``attention``: what an attention call means (Keras ``MultiHeadAttention`` under each runtime,
  the project's own attention classes).
- ``decoders``: decoder layers and functional builders, their cross-attention and its mask as
  the abstract values judge it; the calls of each decoder.
- ``factories``: the tutorial's three-mask factories, judged by their contract on the values.
- ``hops`` and ``paths``: the factories' masks followed through the calls that pass them down,
  and the calls of one decoder that disagree on where its cross-attention mask comes from.
"""
