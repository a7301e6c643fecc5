"""Sequence-to-sequence Transformer on a synthetic "translation" task (Keras 3, any backend).

Written in the shape of the classic English-to-Spanish Transformer example ported to Keras 3: a
positional embedding with a padding mask, an encoder block, a decoder block, and the two-model
layout (an encoder model plus a decoder sub-model with its own inputs). Only `keras.ops` is used,
so it runs on the TensorFlow, JAX and PyTorch backends (set ``KERAS_BACKEND`` before importing).

The decoder keeps the widespread masking bug on purpose: the causal mask combined with the
decoder's own padding mask is handed to the cross-attention, whose keys are the encoder outputs.
Under Keras 3 a call with two tensor arguments never gets ``mask=`` filled, so in this model the
cross-attention silently runs with no mask at all (padded source positions are attended to), and
the causal/decoder-padding mask comes back as soon as someone passes ``mask=`` explicitly.
"""
import numpy as np
import keras
from keras import layers, ops

PAD_ID = 0
START_ID = 1
END_ID = 2
FIRST_WORD_ID = 3


class PositionalEmbedding(layers.Layer):
    def __init__(self, sequence_length, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_embeddings = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.position_embeddings = layers.Embedding(input_dim=sequence_length, output_dim=embed_dim)
        self.sequence_length = sequence_length
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim

    def call(self, inputs):
        length = ops.shape(inputs)[-1]
        positions = ops.arange(0, length, 1)
        return self.token_embeddings(inputs) + self.position_embeddings(positions)

    def compute_mask(self, inputs, mask=None):
        # Always derived from the token ids: returning None when no mask comes in would mean no
        # padding mask is ever created.
        return ops.not_equal(inputs, PAD_ID)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "vocab_size": self.vocab_size,
                "embed_dim": self.embed_dim,
            }
        )
        return config


class TransformerEncoder(layers.Layer):
    def __init__(self, embed_dim, dense_dim, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = embed_dim
        self.dense_dim = dense_dim
        self.num_heads = num_heads
        self.attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.dense_proj = keras.Sequential(
            [layers.Dense(dense_dim, activation="relu"), layers.Dense(embed_dim)]
        )
        self.layernorm_1 = layers.LayerNormalization()
        self.layernorm_2 = layers.LayerNormalization()
        self.supports_masking = True

    def call(self, inputs, mask=None):
        padding_mask = None
        if mask is not None:
            padding_mask = ops.cast(mask[:, None, :], dtype="int32")
        attention_output = self.attention(
            query=inputs, value=inputs, key=inputs, attention_mask=padding_mask
        )
        proj_input = self.layernorm_1(inputs + attention_output)
        proj_output = self.dense_proj(proj_input)
        return self.layernorm_2(proj_input + proj_output)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "embed_dim": self.embed_dim,
                "dense_dim": self.dense_dim,
                "num_heads": self.num_heads,
            }
        )
        return config


class TransformerDecoder(layers.Layer):
    def __init__(self, embed_dim, latent_dim, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = embed_dim
        self.latent_dim = latent_dim
        self.num_heads = num_heads
        self.attention_1 = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.attention_2 = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.dense_proj = keras.Sequential(
            [layers.Dense(latent_dim, activation="relu"), layers.Dense(embed_dim)]
        )
        self.layernorm_1 = layers.LayerNormalization()
        self.layernorm_2 = layers.LayerNormalization()
        self.layernorm_3 = layers.LayerNormalization()
        self.supports_masking = True

    def call(self, inputs, encoder_outputs, mask=None, encoder_padding_mask=None):
        if encoder_padding_mask is None:
            encoder_padding_mask = getattr(encoder_outputs, "_keras_mask", None)
        cross_attention_mask = None
        if encoder_padding_mask is not None:
            cross_attention_mask = ops.cast(encoder_padding_mask[:, None, :], dtype="int32")
        causal_mask = self.get_causal_attention_mask(inputs)
        if mask is not None:
            padding_mask = ops.cast(mask[:, None, :], dtype="int32")
            padding_mask = ops.minimum(padding_mask, causal_mask)
        else:
            padding_mask = causal_mask

        attention_output_1 = self.attention_1(
            query=inputs, value=inputs, key=inputs, attention_mask=padding_mask
        )
        out_1 = self.layernorm_1(inputs + attention_output_1)

        attention_output_2 = self.attention_2(
            query=out_1,
            value=encoder_outputs,
            key=encoder_outputs,
            attention_mask=cross_attention_mask,
        )
        out_2 = self.layernorm_2(out_1 + attention_output_2)

        proj_output = self.dense_proj(out_2)
        return self.layernorm_3(out_2 + proj_output)

    def get_causal_attention_mask(self, inputs):
        input_shape = ops.shape(inputs)
        batch_size, sequence_length = input_shape[0], input_shape[1]
        i = ops.arange(sequence_length)[:, None]
        j = ops.arange(sequence_length)
        mask = ops.cast(i >= j, dtype="int32")
        mask = ops.reshape(mask, (1, sequence_length, sequence_length))
        # broadcast_to rather than tile: tile with tensor repeats breaks shape inference in
        # Keras 3.15 on the TensorFlow backend.
        return ops.broadcast_to(mask, (batch_size, sequence_length, sequence_length))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "embed_dim": self.embed_dim,
                "latent_dim": self.latent_dim,
                "num_heads": self.num_heads,
            }
        )
        return config


def build_model(
    src_vocab_size,
    tgt_vocab_size,
    embed_dim=32,
    latent_dim=64,
    num_heads=2,
    max_length=64,
    dropout=0.1,
):
    encoder_inputs = keras.Input(shape=(None,), dtype="int64", name="encoder_inputs")
    x = PositionalEmbedding(max_length, src_vocab_size, embed_dim)(encoder_inputs)
    encoder_outputs = TransformerEncoder(embed_dim, latent_dim, num_heads)(x)
    encoder = keras.Model(encoder_inputs, encoder_outputs)

    decoder_inputs = keras.Input(shape=(None,), dtype="int64", name="decoder_inputs")
    encoded_seq_inputs = keras.Input(shape=(None, embed_dim), name="decoder_state_inputs")
    encoder_padding_mask = keras.Input(shape=(None,), dtype="bool", name="encoder_padding_mask")
    x = PositionalEmbedding(max_length, tgt_vocab_size, embed_dim)(decoder_inputs)
    x = TransformerDecoder(embed_dim, latent_dim, num_heads)(
        x, encoded_seq_inputs, encoder_padding_mask=encoder_padding_mask
    )
    x = layers.Dropout(dropout)(x)
    decoder_outputs = layers.Dense(tgt_vocab_size, activation="softmax")(x)
    decoder = keras.Model(
        [decoder_inputs, encoded_seq_inputs, encoder_padding_mask], decoder_outputs
    )

    decoder_outputs = decoder(
        [decoder_inputs, encoder_outputs, ops.not_equal(encoder_inputs, 0)]
    )
    transformer = keras.Model(
        [encoder_inputs, decoder_inputs], decoder_outputs, name="transformer"
    )
    return transformer


def make_corpus(seed, n, src_len=10, tgt_len=12, src_vocab_size=40, min_words=2):
    """Synthetic parallel corpus: the target is the source reversed, each word mapped to another id.

    Returns (encoder_inputs, decoder_inputs, decoder_targets) as int64 arrays, right-padded with
    PAD_ID. Reversal makes the first target word depend on the LAST source word, so a decoder that
    cannot see the whole source cannot learn the task. The target side needs an END token, so the
    longest sentence is bounded by both lengths.
    """
    rng = np.random.default_rng(seed)
    max_words = min(src_len, tgt_len - 1)
    n_words = src_vocab_size - FIRST_WORD_ID
    encoder_inputs = np.full((n, src_len), PAD_ID, dtype="int64")
    decoder_inputs = np.full((n, tgt_len), PAD_ID, dtype="int64")
    decoder_targets = np.full((n, tgt_len), PAD_ID, dtype="int64")
    for row in range(n):
        length = int(rng.integers(min_words, max_words + 1))
        words = rng.integers(0, n_words, size=length)
        target = [FIRST_WORD_ID + (7 * int(w) + 3) % n_words for w in words[::-1]]
        encoder_inputs[row, :length] = FIRST_WORD_ID + words
        decoder_inputs[row, : length + 1] = [START_ID] + target
        decoder_targets[row, : length + 1] = target + [END_ID]
    return encoder_inputs, decoder_inputs, decoder_targets


def target_vocab_size(src_vocab_size=40):
    """Target ids use the same word range as the source plus the special ids."""
    return src_vocab_size


def train(seed=0, epochs=10, n_pairs=4000):
    """Train on sentence pairs whose target/source length ratio ranges from 0.5 to 2.

    Batches group pairs of similar source length and are padded to their own longest source and
    target, so source and target lengths differ from batch to batch, as with real data. The
    validation set holds pairs of every length ratio and is reported per ratio bucket. The
    corpus, the batching and the report come from ``maskfix.verify`` (``maskfix[verify]``).
    """
    import sys

    from maskfix.verify.command import format_ratio_table
    from maskfix.verify.training import train_by_ratio

    metrics = train_by_ratio(sys.modules[__name__], seed=seed, epochs=epochs, n_pairs=n_pairs,
                             report=print)
    print(format_ratio_table([metrics], ["this model"], metrics["runtime"]))
    return metrics


if __name__ == "__main__":
    train()
