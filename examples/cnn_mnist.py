"""A PyTorch CNN for MNIST that runs on fastnn: only the imports below differ from the PyTorch
program (`import torch`, `import torch.nn as nn`, `import torch.nn.functional as F`,
`import torch.optim as optim`, `from torch.utils.data import DataLoader, TensorDataset`). It
trains on the 5,000 MNIST images bundled with fastnn (fastnn.data.load_mnist_5k stands in for
torchvision's download), holding out 1,000.

    python examples/cnn_mnist.py
"""
import fastnn as torch
import fastnn.nn as nn
import fastnn.nn.functional as F
import fastnn.optim as optim
from fastnn.utils.data import DataLoader, TensorDataset
from fastnn.data import load_mnist_5k


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def main(epochs=3):
    torch.manual_seed(0)
    images, labels = load_mnist_5k()
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    x = (x - 0.1307) / 0.3081
    y = torch.tensor(labels)
    perm = torch.randperm(len(y))
    test_idx, train_idx = perm[:1000], perm[1000:]
    train_loader = DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=64, shuffle=True)
    test_loader = DataLoader(TensorDataset(x[test_idx], y[test_idx]), batch_size=500)

    model = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for epoch in range(epochs):
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(data), target)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                correct += (model(data).argmax(dim=1) == target).sum().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {correct / 1000:.3f}")
    return correct / 1000


if __name__ == "__main__":
    main()
