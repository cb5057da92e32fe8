"""The inference form of a model: what is exported, and the only place it is made.

Training-only machinery is removed and every 1-bit quantizer that larq's
converters would not see as `sign` is replaced by `ste_sign`:

- an FSG-wrapped model is unwrapped (FSG only changes training);
- learned-gradient layers (`HyperConv2D`, `HyperDense`) become plain larq layers
  holding their generated kernel (`bnnzoo.layers.to_inference_model`);
- annealed quantizers (BNN++, STE-Warmup), the other ProxConnect++ forward/backward
  pairs and any other 1-bit quantizer that is not one of larq's sign quantizers
  become `ste_sign`, whose forward pass is the `sign` that annealing ends at.
  The `ste` backward's `clip_value` is kept, so the copy also trains as the
  original would at exact sign.

Multi-bit quantizers (e.g. DoReFa activations) stay as they are: they convert to
float ops.
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf

from bnnzoo import fsg, layers, quantizers
from bnnzoo.export.errors import ExportError

__all__ = ["inference_model"]

# larq quantizers whose forward pass LCE converts to binary ops as they are.
_NATIVE_QUANTIZERS = (
    lq.quantizers.SteSign,
    lq.quantizers.ApproxSign,
    lq.quantizers.SwishSign,
    lq.quantizers.MagnitudeAwareSign,
)
_NATIVE_QUANTIZER_NAMES = {"ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign"}
_QUANTIZER_ATTRS = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer")


def _replaceable(quantizer) -> bool:
    """A 1-bit quantizer object that LCE would not see as `sign`."""
    if quantizer is None or isinstance(quantizer, str):
        return False  # a name: larq's own (native or not), converted as it is
    if isinstance(quantizer, _NATIVE_QUANTIZERS):
        return False
    return getattr(quantizer, "precision", None) == 1


def _sign_quantizer(quantizer) -> lq.quantizers.SteSign:
    """The `ste_sign` that replaces `quantizer`, with its `ste` clip value if it has one."""
    parameters = getattr(quantizer, "parameters", None)
    clip = parameters.get("clip_value", 1.0) if isinstance(parameters, dict) else 1.0
    return lq.quantizers.SteSign(clip_value=clip)


def _needs_rewrite(layer) -> bool:
    return any(_replaceable(getattr(layer, attr, None)) for attr in _QUANTIZER_ATTRS)


def _all_layers(model: tf.keras.Model):
    """Every layer of `model`, nested models' layers included (after the nested model)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, tf.keras.Model):
            yield from _all_layers(layer)


def inference_model(model: tf.keras.Model, *, require_exact_sign: bool = False) -> tf.keras.Model:
    """`model` with only plain `sign` binarization and no training-only machinery.

    The one inference-form rewrite of bnnzoo: `convert` and `export_model` apply
    it, and it is what a trained model with annealed quantizers is compared
    against. An FSG model is unwrapped, learned-gradient layers become plain larq
    layers and every 1-bit quantizer that is not one of larq's sign quantizers
    becomes `ste_sign` (keeping its `clip_value`). The copy holds `model`'s
    weights.

    !!! example
        ```python
        import larq as lq
        import bnnzoo
        from bnnzoo.export import inference_model

        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16,
                                           input_quantizer="bnnpp", kernel_quantizer="bnnpp")
        plain = inference_model(model)
        assert all(isinstance(l.kernel_quantizer, lq.quantizers.SteSign)
                   for l in plain.layers if getattr(l, "kernel_quantizer", None) is not None)
        ```

    Args:
        model: a Keras model (functional or sequential), possibly FSG-wrapped.
        require_exact_sign: refuse a model whose annealed quantizers have not
            reached exact `sign` yet (their replacement would change its outputs).

    Returns:
        The inference form; `model` itself when nothing needs changing.

    Raises:
        ExportError: with `require_exact_sign`, naming the quantizers whose
            `exact_sign` is still off (an `ExportError` is a `ValueError`).
    """
    if isinstance(model, fsg.FSGModel):
        model = fsg.unwrap(model)
    if require_exact_sign:
        unfinished = [q.name for q in quantizers.annealable_quantizers(model) if not q.is_exact_sign()]
        if unfinished:
            raise ExportError(f"quantizers not annealed to sign yet (exact_sign is False): {unfinished}")
    if any(layers.is_hyper_layer(layer) for layer in _all_layers(model)):
        model = layers.to_inference_model(model)
    if not any(_needs_rewrite(layer) for layer in _all_layers(model)):
        return model

    def clone(layer):
        if isinstance(layer, tf.keras.Model):
            return inference_model(layer)
        config = layer.get_config()
        for attr in _QUANTIZER_ATTRS:
            if attr in config and _replaceable(getattr(layer, attr, None)):
                config[attr] = lq.quantizers.serialize(_sign_quantizer(getattr(layer, attr)))
        return layer.__class__.from_config(config)

    with quantizers.nonbinary_expected():  # the copy replaces them with sign
        new = tf.keras.models.clone_model(model, clone_function=clone)
    new.set_weights(model.get_weights())
    return new
