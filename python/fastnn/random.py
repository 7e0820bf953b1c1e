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


def _state_array(bit_generator):
    import json

    return np.frombuffer(json.dumps(bit_generator.state).encode(), dtype=np.uint8).copy()


def _set_state(bit_generator, state, who):
    """Give bit_generator the state in `state` (a uint8 array from _state_array); ValueError on
    anything else (a checkpoint's state is data from a file: it is parsed, never trusted)."""
    import json

    try:
        text = bytes(np.asarray(state, dtype=np.uint8).reshape(-1)).decode()
        # the JSON of a generator's state is a flat dict of a dict of numbers: a few hundred bytes
        if len(text) > 4096 or text.count("{") + text.count("[") > 8:
            raise ValueError("longer or deeper than a generator state")
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(f"a JSON {type(value).__name__}, not an object")
        bit_generator.state = value
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise ValueError(f"{who}: not a state get_rng_state() wrote ({type(e).__name__}: {e})") from None


def get_rng_state():
    """The generator's state as a uint8 array (JSON of the bit generator's state dict)."""
    return _state_array(_generator.bit_generator)


def set_rng_state(new_state):
    """Restore a state that get_rng_state() gave; ValueError on anything else, leaving the
    generator as it was."""
    _set_state(_generator.bit_generator, new_state, "set_rng_state")


class Generator:
    """torch.Generator's surface over a NumPy generator: manual_seed(seed) (returns self),
    seed(), initial_seed(), get_state() / set_state() (as get_rng_state's uint8 array). Pass one
    where torch takes `generator=` (random_split, RandomSampler, DataLoader, randperm).
    `device` is accepted for signature compatibility; draws happen on the host."""

    def __init__(self, device="cpu"):
        self.device = device
        self._seed = int(np.random.SeedSequence().entropy % (2**63))
        self.numpy = np.random.default_rng(self._seed)

    def manual_seed(self, seed):
        self._seed = int(seed)
        self.numpy = np.random.default_rng(self._seed)
        return self

    def seed(self):
        self.manual_seed(int(np.random.SeedSequence().entropy % (2**63)))
        return self._seed

    def initial_seed(self):
        return self._seed

    def get_state(self):
        return _state_array(self.numpy.bit_generator)

    def set_state(self, new_state):
        _set_state(self.numpy.bit_generator, new_state, "Generator.set_state")
        return self


def numpy_generator(generator=None):
    """The NumPy generator behind `generator`: a fastnn Generator, a numpy Generator, or None
    (fastnn's global one)."""
    if generator is None:
        return _generator
    if isinstance(generator, Generator):
        return generator.numpy
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"expected a fastnn.Generator or a numpy.random.Generator, got {type(generator).__name__}")
