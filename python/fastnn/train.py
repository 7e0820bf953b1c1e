"""fastnn.train: the training loop (fit), evaluation, metrics, progress and checkpoints.

    history = fit(model, loss_fn, optimizer, train_loader, epochs=3, val_loader=val_loader)

Progress goes through tqdm when it is installed and stderr is a terminal (the `progress` extra),
else one line per epoch. Checkpoints are .npz files (fastnn.save: no pickle) holding the model's
and optimizer's state dicts, the scheduler's state, the epoch, the history and the random
generator's state, so resuming continues exactly where the saved run was.
"""
import os
import sys
import time

import numpy as np

from . import random as _random
from .serialization import load, save
from .tensor import Tensor, no_grad

__all__ = ["fit", "evaluate", "accuracy", "save_checkpoint", "load_checkpoint"]


def accuracy(output, target):
    """Fraction of rows whose largest output is the target class."""
    out = output.data if isinstance(output, Tensor) else np.asarray(output)
    tgt = target.data if isinstance(target, Tensor) else np.asarray(target)
    return float((out.argmax(axis=1) == tgt).mean()) if len(tgt) else 0.0


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


def evaluate(model, loader, loss_fn=None, metrics=("accuracy",)):
    """Mean loss and metrics over a loader, in eval mode and without a graph (weighted by batch size)."""
    fns = _metric_fns(metrics)
    was_training = getattr(model, "training", False)
    model.eval()
    totals, n = {}, 0
    with no_grad():
        for batch in loader:
            x, y = _split(batch)
            out = model(x)
            k = len(y)
            if loss_fn is not None:
                totals["loss"] = totals.get("loss", 0.0) + float(loss_fn(out, y).item()) * k
            for name, fn in fns.items():
                totals[name] = totals.get(name, 0.0) + fn(out, y) * k
            n += k
    model.train(was_training)
    return {k: v / max(n, 1) for k, v in totals.items()}


def save_checkpoint(path, model, optimizer=None, epoch=0, scheduler=None, history=None):
    state = {"model": model.state_dict(), "epoch": int(epoch), "rng": _random.get_rng_state(),
             "history": history or []}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    tmp = path + ".tmp.npz"
    save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, model, optimizer=None, scheduler=None):
    """Restore model, optimizer, scheduler and the random generator; returns (epoch, history)."""
    state = load(path)
    model.load_state_dict(state["model"])
    if optimizer is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    _random.set_rng_state(state["rng"])
    return int(state["epoch"]), list(state.get("history", []))


def fit(model, loss_fn, optimizer, train_loader, epochs=1, val_loader=None, metrics=("accuracy",),
        scheduler=None, callbacks=(), checkpoint=None, resume=False, progress=None, log=print):
    """Train for `epochs` epochs; returns the history (one dict of loss and metrics per epoch,
    with val_ prefixes for the validation set).

    checkpoint: a path written after every epoch; resume=True first loads it (when it exists)
    and continues from the epoch after the saved one. callbacks: objects with
    on_epoch_end(epoch, logs) (and optionally on_batch_end(step, logs)); one returning True from
    on_epoch_end stops training. scheduler.step() runs after each epoch."""
    fns = _metric_fns(metrics)
    start, history = 0, []
    if resume and checkpoint and os.path.exists(checkpoint):
        start, history = load_checkpoint(checkpoint, model, optimizer, scheduler)
    for epoch in range(start, epochs):
        model.train()
        t0 = time.perf_counter()
        bar = _progress(len(train_loader), f"epoch {epoch + 1}/{epochs}", progress)
        total_loss, totals, n = 0.0, {}, 0
        for step, batch in enumerate(train_loader):
            x, y = _split(batch)
            optimizer.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
            k = len(y)
            lv = float(loss.item())
            total_loss += lv * k
            for name, fn in fns.items():
                totals[name] = totals.get(name, 0.0) + fn(out, y) * k
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
            logs.update({"val_" + k: v for k, v in evaluate(model, val_loader, loss_fn, metrics).items()})
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
