"""A siamese network in the style of the siamese and triplet examples: one shared embedding net
applied to both inputs, pair similarity from torch.cat of the two embeddings through a Linear
and sigmoid with BCELoss, a contrastive loss on F.pairwise_distance with torch.clamp(margin - d,
min=0.0), nn.TripletMarginLoss on (anchor, positive, negative), F.cosine_similarity for
retrieval, and RMSprop."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_data(n=48, seed=21, classes=4, size=10):
    """Images of `classes` prototypes with noise: (N, 1, size, size) and labels."""
    rng = np.random.default_rng(seed)
    protos = np.random.default_rng(20).standard_normal((classes, size, size))
    labels = rng.integers(0, classes, size=n)
    x = protos[labels] + 0.6 * rng.standard_normal((n, size, size))
    return torch.from_numpy(x[:, None].astype(np.float32)), torch.from_numpy(labels)


def make_triplets(labels, rng):
    """(anchor, positive, negative) indices: positive shares the anchor's label, negative not."""
    labels = labels.numpy()
    anchors, positives, negatives = [], [], []
    for i, lab in enumerate(labels):
        same = np.flatnonzero((labels == lab) & (np.arange(len(labels)) != i))
        other = np.flatnonzero(labels != lab)
        if len(same) and len(other):
            anchors.append(i)
            positives.append(rng.choice(same))
            negatives.append(rng.choice(other))
    return [torch.tensor(v, dtype=torch.long) for v in (anchors, positives, negatives)]


class SiameseNetwork(nn.Module):
    def __init__(self, embedding=16):
        super(SiameseNetwork, self).__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(8, 16, kernel_size=3),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        self.fc_embed = nn.Linear(16, embedding)
        self.fc = nn.Sequential(nn.Linear(embedding * 2, 16), nn.ReLU(inplace=True), nn.Linear(16, 1))
        self.sigmoid = nn.Sigmoid()
        self.cnn.apply(self.init_weights)

    def init_weights(self, m):
        if isinstance(m, nn.Conv2d):
            torch.nn.init.xavier_uniform_(m.weight)
            m.bias.data.fill_(0.01)

    def forward_once(self, x):
        output = self.cnn(x)
        output = output.view(output.size()[0], -1)
        return self.fc_embed(output)

    def forward(self, input1, input2):
        output1 = self.forward_once(input1)
        output2 = self.forward_once(input2)
        output = torch.cat((output1, output2), 1)
        output = self.fc(output)
        output = self.sigmoid(output)
        return output, output1, output2


def contrastive_loss(out1, out2, same, margin=2.0):
    d = F.pairwise_distance(out1, out2, keepdim=True)
    return torch.mean(same * torch.pow(d, 2) + (1 - same) * torch.pow(torch.clamp(margin - d, min=0.0), 2))


def build_model():
    torch.manual_seed(0)
    return SiameseNetwork().to(device)


def train(model, steps=10, batch_size=16):
    images, labels = make_data()
    rng = np.random.default_rng(22)
    anchor, positive, negative = make_triplets(labels, rng)
    bce = nn.BCELoss()
    triplet = nn.TripletMarginLoss(margin=1.0, p=2)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for step in range(steps):
        start = (step * batch_size) % (len(anchor) - batch_size + 1)
        a = anchor[start : start + batch_size]
        # pairs: the anchor with the positive for even rows, with the negative for odd rows
        other = torch.where(
            torch.arange(len(a)) % 2 == 0, positive[start : start + batch_size], negative[start : start + batch_size]
        )
        target = (labels[a] == labels[other]).float().unsqueeze(1).to(device)
        x1, x2 = images[a].to(device), images[other].to(device)
        optimizer.zero_grad()
        prob, e1, e2 = model(x1, x2)
        loss = bce(prob, target) + 0.1 * contrastive_loss(e1, e2, target)
        ea = model.forward_once(images[a].to(device))
        ep = model.forward_once(images[positive[start : start + batch_size]].to(device))
        en = model.forward_once(images[negative[start : start + batch_size]].to(device))
        loss = loss + triplet(ea, ep, en)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {name: p.grad for name, p in model.named_parameters()}


def main():
    model = build_model()
    losses, _ = train(model, 40)
    images, labels = make_data(24, seed=23)
    gallery, gallery_labels = make_data(8, seed=24)
    model.eval()
    with torch.no_grad():
        q = model.forward_once(images.to(device))
        g = model.forward_once(gallery.to(device))
        sim = F.cosine_similarity(q.unsqueeze(1), g.unsqueeze(0), dim=2)  # (24, 8)
        best = sim.argmax(dim=1)
        correct = (gallery_labels[best.cpu()] == labels).sum().item()
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, retrieval accuracy {correct}/{len(labels)}")
    return losses


if __name__ == "__main__":
    main()
