"""The random number generator behind fastnn's initialisations, randn/rand, Dropout and shuffling.

It is a host generator for every device: values for a CUDA tensor (initialisations, randn(...,
device="cuda"), dropout masks) are drawn here and copied to the device, so a run seeded with
manual_seed draws the same numbers, and drops the same elements, on the CPU and on a GPU."""

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed fastnn's generator (torch.manual_seed's name); returns it."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def seed():
    """Seed from the OS's entropy; returns the new seed."""
    s = int(np.random.SeedSequence().entropy % (2**63))
    manual_seed(s)
    return s


def generator():
    return _generator


def get_rng_state():
    """The generator's state as a uint8 array (JSON of the bit generator's state dict)."""
    import json

    return np.frombuffer(json.dumps(_generator.bit_generator.state).encode(), dtype=np.uint8).copy()


def set_rng_state(state):
    """Restore a state that get_rng_state() gave; ValueError on anything else (a checkpoint's
    state is data from a file: it is parsed, never trusted)."""
    import json

    try:
        text = bytes(np.asarray(state, dtype=np.uint8).reshape(-1)).decode()
        # get_rng_state's JSON is a flat dict of a dict of numbers: a few hundred bytes, depth 2
        if len(text) > 4096 or text.count("{") + text.count("[") > 8:
            raise ValueError("longer or deeper than a generator state")
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(f"a JSON {type(value).__name__}, not an object")
        _generator.bit_generator.state = value
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise ValueError(f"set_rng_state: not a state get_rng_state() wrote ({type(e).__name__}: {e})") from None
