"""The polynomial-regression example's shape: features [x, x^2, x^3, x^4] built with
torch.cat([x ** i for i in range(1, 5)], 1), a single nn.Linear fitted with F.smooth_l1_loss, the
gradient step written by hand (param.add_ on .data, and param -= lr * param.grad under
torch.no_grad()), gradients cleared with fc.zero_grad() and .grad.zero_(), and the learned
polynomial printed from weight.view(-1).tolist()."""

import numpy as np
import torch
import torch.nn.functional as F

POLY_DEGREE = 4
W_target = torch.tensor([[0.5], [-1.2], [0.3], [0.8]])
b_target = torch.tensor([0.7])


def make_features(x):
    """Builds features i.e. a matrix with columns [x, x^2, x^3, x^4]."""
    x = x.unsqueeze(1)
    return torch.cat([x**i for i in range(1, POLY_DEGREE + 1)], 1)


def f(x):
    """Approximated function."""
    return x.mm(W_target) + b_target.item()


def poly_desc(W, b):
    """Creates a string description of a polynomial."""
    result = "y = "
    for i, w in enumerate(W):
        result += "{:+.2f} x^{} ".format(w, i + 1)
    result += "{:+.2f}".format(b[0])
    return result


def get_batch(rng, batch_size=32):
    """Builds a batch i.e. (x, f(x)) pair."""
    random = torch.from_numpy(rng.uniform(-1, 1, batch_size).astype(np.float32))
    x = make_features(random)
    y = f(x)
    return x, y


def build_model():
    torch.manual_seed(0)
    return torch.nn.Linear(W_target.size(0), 1)


def train(model, steps=20, lr=0.1):
    fc = model
    rng = np.random.default_rng(8)
    losses = []
    for step in range(steps):
        batch_x, batch_y = get_batch(rng)
        # Reset gradients
        fc.zero_grad()
        # Forward pass
        output = F.smooth_l1_loss(fc(batch_x), batch_y)
        loss = output.item()
        # Backward pass
        output.backward()
        if step % 2 == 0:
            # Apply gradients on .data
            for param in fc.parameters():
                param.data.add_(-lr * param.grad)
        else:
            with torch.no_grad():
                for param in fc.parameters():
                    param -= lr * param.grad
        losses.append(loss)
    grads = {name: p.grad.clone() for name, p in fc.named_parameters()}
    for param in fc.parameters():
        param.grad.zero_()
    assert float(fc.weight.grad.abs().sum()) == 0.0
    return losses, grads


def main():
    fc = build_model()
    losses, _ = train(fc, 300)
    print("Loss: {:.6f} after {} batches".format(losses[-1], len(losses)))
    print("==> Learned function:\t" + poly_desc(fc.weight.view(-1).tolist(), fc.bias.tolist()))
    print("==> Actual function:\t" + poly_desc(W_target.view(-1).tolist(), b_target.tolist()))
    return losses


if __name__ == "__main__":
    main()
