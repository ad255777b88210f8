"""Input checks shared by the layers: a clear TypeError/ValueError before any arithmetic runs."""
from ..functional._checks import float_array, same_device, same_dtype


def layer_input(layer, x, like, ndim=None):
    """x is a float array with `ndim` dimensions, on the device and of the dtype of the array `like`
    (the layer's weight), so no silent up-casts or host/device mix-ups happen inside a layer."""
    float_array(f"{layer} input", x, ndim=ndim)
    same_device(input=x, weight=like)
    if x.dtype != like.dtype:
        raise TypeError(f"{layer}: input is {x.dtype} but the layer's parameters are {like.dtype}; "
                        f"cast the input or call .to(dtype={str(x.dtype)!r}) on the model")
    return x


def last_dim(layer, x, size):
    if x.shape[-1] != size:
        raise ValueError(f"{layer}: expected the last dimension to be {size}, got shape {tuple(x.shape)}")


def same_shape(layer, a_name, a, b_name, b):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{layer}: {a_name} has shape {tuple(a.shape)} but {b_name} has {tuple(b.shape)}")


__all__ = ["float_array", "last_dim", "layer_input", "same_device", "same_dtype", "same_shape"]
