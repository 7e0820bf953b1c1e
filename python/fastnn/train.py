"""fastnn.train: the training loop (fit), evaluation, metrics, progress and checkpoints.

    history = fit(model, loss_fn, optimizer, train_loader, epochs=3, val_loader=val_loader)

Progress goes through tqdm when it is installed and stderr is a terminal (the `progress` extra),
else one line per epoch. Checkpoints are .npz files (fastnn.save: no pickle) holding the model's
and optimizer's state dicts, the scheduler's state, the epoch, the history and the random
generator's state, so resuming continues exactly where the saved run was.

On a CUDA device: fit(..., device="cuda") moves the model there (or fit runs on the device the
model's parameters are on) and copies each batch (tensors, NumPy arrays, lists / tuples / dicts
of them) to it; losses and metrics come back to the host with explicit copies, once per batch.
"""

import os
import sys
import time

import numpy as np

from . import _device as _dev
from . import random as _random
from .serialization import load, save
from .tensor import Tensor, no_grad

__all__ = ["fit", "evaluate", "accuracy", "save_checkpoint", "load_checkpoint"]


def accuracy(output, target):
    """Fraction of rows whose largest output is the target class."""
    out = output._data if isinstance(output, Tensor) else output
    tgt = target._data if isinstance(target, Tensor) else target
    if not (hasattr(out, "__cuda_array_interface__") or hasattr(tgt, "__cuda_array_interface__")):
        out, tgt = np.asarray(out), np.asarray(tgt)
        return float((out.argmax(axis=1) == tgt).mean()) if len(tgt) else 0.0
    _dev.check_same_device(out, tgt)
    return float(_dev.to_host((out.argmax(axis=1) == tgt).mean())) if len(tgt) else 0.0


METRICS = {"accuracy": accuracy}


def _metric_fns(metrics):
    out = {}
    for m in metrics or ():
        if callable(m):
            out[getattr(m, "__name__", "metric")] = m
        elif m in METRICS:
            out[m] = METRICS[m]
        else:
            raise ValueError(f"fastnn.train: unknown metric {m!r} (known: {', '.join(METRICS)}, or a callable)")
    return out


def _split(batch):
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch
    raise ValueError("fastnn.train: expected each batch to be (inputs, targets)")


def _model_device(model):
    """The device of the model's first parameter (or buffer); the CPU for a model without any."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return _dev.CPU


def _to_device(obj, dev):
    """Batch data on dev: tensors moved; on a CUDA device NumPy arrays become tensors there;
    lists, tuples and dicts recursed; anything else (and host data for the CPU) as it is."""
    if isinstance(obj, Tensor):
        return obj.to(dev)
    if isinstance(obj, np.ndarray):
        return obj if dev.type == "cpu" else Tensor(obj).to(dev)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, dev) for v in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, dev) for k, v in obj.items()}
    return obj


def _scalar(v):
    """A metric's value on the host (an explicit copy for a device value)."""
    if isinstance(v, Tensor):
        return v.item()
    if not isinstance(v, (int, float, np.ndarray, np.generic)) and hasattr(v, "__cuda_array_interface__"):
        return _dev.to_host(v).item()
    return v


def _progress(total, desc, enabled):
    """A tqdm bar when tqdm is installed and stderr is a terminal (or enabled=True), else None."""
    if enabled is False:
        return None
    if enabled is None and not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)


def evaluate(model, loader, loss_fn=None, metrics=("accuracy",), device=None):
    """Mean loss and metrics over a loader, in eval mode and without a graph (weighted by batch size);
    batches go to `device` (default: the model's device)."""
    fns = _metric_fns(metrics)
    dev = _model_device(model) if device is None else _dev.as_device(device)
    was_training = getattr(model, "training", False)
    model.eval()
    totals, n = {}, 0
    with no_grad():
        for batch in loader:
            x, y = _to_device(_split(batch), dev)
            out = model(x)
            k = len(y)
            if loss_fn is not None:
                totals["loss"] = totals.get("loss", 0.0) + float(loss_fn(out, y).item()) * k
            for name, fn in fns.items():
                totals[name] = totals.get(name, 0.0) + _scalar(fn(out, y)) * k
            n += k
    model.train(was_training)
    return {k: v / max(n, 1) for k, v in totals.items()}


def save_checkpoint(path, model, optimizer=None, epoch=0, scheduler=None, history=None):
    state = {"model": model.state_dict(), "epoch": int(epoch), "rng": _random.get_rng_state(), "history": history or []}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    tmp = path + ".tmp.npz"
    save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, model, optimizer=None, scheduler=None):
    """Restore model, optimizer, scheduler and the random generator; returns (epoch, history).

    A file that is not a checkpoint save_checkpoint wrote, or one whose parts do not fit the
    objects given, raises ValueError naming the file and the part."""
    state = load(path)
    where = f"load_checkpoint: {os.fspath(path)}"
    if not isinstance(state, dict) or not {"model", "epoch", "rng"} <= state.keys():
        raise ValueError(f"{where}: not a checkpoint (expected a dict with 'model', 'epoch' and 'rng')")
    epoch, history = state["epoch"], state.get("history", [])
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0 or not isinstance(history, list):
        raise ValueError(f"{where}: its 'epoch' is not a count or its 'history' not a list")
    parts = [("model", model.load_state_dict), ("rng", _random.set_rng_state)]
    if optimizer is not None and "optimizer" in state:
        parts.append(("optimizer", optimizer.load_state_dict))
    if scheduler is not None and "scheduler" in state:
        parts.append(("scheduler", scheduler.load_state_dict))
    for key, restore in parts:
        try:
            restore(state[key])
        except (KeyError, TypeError, IndexError, ValueError, AttributeError, RuntimeError) as e:
            raise ValueError(f"{where}: its {key!r} entry does not fit ({type(e).__name__}: {e})") from None
    return epoch, list(history)


def fit(
    model,
    loss_fn,
    optimizer,
    train_loader,
    epochs=1,
    val_loader=None,
    metrics=("accuracy",),
    scheduler=None,
    callbacks=(),
    checkpoint=None,
    resume=False,
    progress=None,
    log=print,
    device=None,
):
    """Train for `epochs` epochs; returns the history (one dict of loss and metrics per epoch,
    with val_ prefixes for the validation set).

    device: where to train ("cuda", "cpu", a fastnn.device); the model is moved there first (in
    place), and every batch is copied there. None: the device of the model's parameters.

    checkpoint: a path written after every epoch; resume=True first loads it (when it exists)
    and continues from the epoch after the saved one. callbacks: objects with
    on_epoch_end(epoch, logs) (and optionally on_batch_end(step, logs)); one returning True from
    on_epoch_end stops training. scheduler.step() runs after each epoch."""
    fns = _metric_fns(metrics)
    if device is not None:
        model.to(device)
    dev = _model_device(model) if device is None else _dev.as_device(device)
    start, history = 0, []
    if resume and checkpoint and os.path.exists(checkpoint):
        start, history = load_checkpoint(checkpoint, model, optimizer, scheduler)
    for epoch in range(start, epochs):
        model.train()
        t0 = time.perf_counter()
        bar = _progress(len(train_loader), f"epoch {epoch + 1}/{epochs}", progress)
        total_loss, totals, n = 0.0, {}, 0
        for step, batch in enumerate(train_loader):
            x, y = _to_device(_split(batch), dev)
            optimizer.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
            k = len(y)
            lv = float(loss.item())
            total_loss += lv * k
            for name, fn in fns.items():
                totals[name] = totals.get(name, 0.0) + _scalar(fn(out, y)) * k
            n += k
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{lv:.4f}")
            for cb in callbacks:
                if hasattr(cb, "on_batch_end"):
                    cb.on_batch_end(step, {"loss": lv})
        if bar is not None:
            bar.close()
        logs = {"epoch": epoch + 1, "loss": total_loss / max(n, 1)}
        logs.update({k: v / max(n, 1) for k, v in totals.items()})
        if val_loader is not None:
            logs.update({"val_" + k: v for k, v in evaluate(model, val_loader, loss_fn, metrics, dev).items()})
        logs["time_s"] = time.perf_counter() - t0
        history.append(logs)
        if scheduler is not None:
            scheduler.step()
        if checkpoint:
            save_checkpoint(checkpoint, model, optimizer, epoch + 1, scheduler, history)
        if log is not None:
            log(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items()))
        stop = False
        for cb in callbacks:
            if hasattr(cb, "on_epoch_end") and cb.on_epoch_end(epoch, logs):
                stop = True
        if stop:
            break
    return history
