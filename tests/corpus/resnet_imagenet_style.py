"""The ImageNet example's training loop on a tiny ResNet over synthetic 16x16 images: BasicBlock
with a downsample shortcut, nn.AdaptiveAvgPool2d((1, 1)), init.kaiming_normal_(mode='fan_out',
nonlinearity='relu') and constant_ BatchNorm init, SGD with momentum, weight_decay and nesterov,
CosineAnnealingLR, an AverageMeter, and accuracy(output, target, topk=(1, 5)) built from
output.topk, pred.t(), pred.eq(target.view(1, -1).expand_as(pred)) and
correct[:k].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / batch_size)."""

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
NUM_CLASSES = 8


def make_data(n=64, size=16, seed=50):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, NUM_CLASSES, size=n)
    rows, cols = np.mgrid[0:size, 0:size] / size
    angle = y[:, None, None] * np.pi / NUM_CLASSES
    base = np.sin(6 * (np.cos(angle) * rows + np.sin(angle) * cols))
    x = np.stack([base, base**2, -base], axis=1) + 0.3 * rng.standard_normal((n, 3, size, size))
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=NUM_CLASSES):
        super().__init__()
        self.inplanes = 8
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 8, layers[0])
        self.layer2 = self._make_layer(block, 16, layers[1], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


class AverageMeter(object):
    """Computes and stores the average and current value"""

    def __init__(self, name, fmt=":f"):
        self.name = name
        self.fmt = fmt
        self.reset()

    def reset(self):
        self.val = 0
        self.avg = 0
        self.sum = 0
        self.count = 0

    def update(self, val, n=1):
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count

    def __str__(self):
        fmtstr = "{name} {val" + self.fmt + "} ({avg" + self.fmt + "})"
        return fmtstr.format(**self.__dict__)


def accuracy(output, target, topk=(1,)):
    """Computes the accuracy over the k top predictions for the specified values of k"""
    with torch.no_grad():
        maxk = max(topk)
        batch_size = target.size(0)

        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))

        res = []
        for k in topk:
            correct_k = correct[:k].reshape(-1).float().sum(0, keepdim=True)
            res.append(correct_k.mul_(100.0 / batch_size))
        return res


def build_model():
    torch.manual_seed(0)
    return ResNet(BasicBlock, [1, 1]).to(device)


def train(model, steps=6, batch_size=16):
    images, targets = make_data()
    criterion = nn.CrossEntropyLoss().to(device)
    optimizer = optim.SGD(model.parameters(), 0.05, momentum=0.9, weight_decay=1e-4, nesterov=True)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    losses_meter, top1, top5 = (
        AverageMeter("Loss", ":.4e"),
        AverageMeter("Acc@1", ":6.2f"),
        AverageMeter("Acc@5", ":6.2f"),
    )
    model.train()
    losses = []
    for i in range(steps):
        start = (i * batch_size) % len(images)
        images_b = images[start : start + batch_size].to(device, non_blocking=True)
        target = targets[start : start + batch_size].to(device, non_blocking=True)
        output = model(images_b)
        loss = criterion(output, target)
        acc1, acc5 = accuracy(output, target, topk=(1, 5))
        losses_meter.update(loss.item(), images_b.size(0))
        top1.update(acc1[0], images_b.size(0))
        top5.update(acc5[0], images_b.size(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    train.meters = (losses_meter, top1, top5)
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 24)
    print(" ".join(str(m) for m in train.meters))
    images, targets = make_data(32, seed=51)
    model.eval()
    with torch.no_grad():
        acc1, acc5 = accuracy(model(images.to(device)), targets.to(device), topk=(1, 5))
    print(f" * Acc@1 {acc1.item():.3f} Acc@5 {acc5.item():.3f}")
    return losses


if __name__ == "__main__":
    main()
