"""fastnn.onnx: importable for scripts that reference torch.onnx; fastnn has no ONNX exporter."""

__all__ = ["export", "is_in_onnx_export"]


def export(*args, **kwargs):
    raise NotImplementedError(
        "torch.onnx.export: fastnn has no ONNX exporter. Save the weights with fastnn.save(model.state_dict(), ...), "
        "load them into the same model built with PyTorch and export that with torch.onnx.export"
    )


def is_in_onnx_export():
    return False
