"""The word-level language model example's shape: a corpus tokenised into ids, batchify with
.narrow and .view(bsz, -1).t().contiguous(), get_batch slices, an RNNModel picking its recurrent
layer with getattr(nn, rnn_type), Embedding + Dropout, decoder weights tied to the encoder,
init.uniform_/init.zeros_, hidden state repackaged with detach() between batches,
clip_grad_norm_, the manual SGD update p.data.add_(p.grad, alpha=-lr), and perplexity as
math.exp of the evaluation loss."""

import math

import numpy as np
import torch
import torch.nn as nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

WORDS = "the cat sat on a mat and my dog ran to big red ball while one bird sang in tall old tree".split()


class Dictionary:
    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


class Corpus:
    def __init__(self, n_words=1200, seed=12):
        rng = np.random.default_rng(seed)
        self.dictionary = Dictionary()
        # a Markov chain over WORDS: each word mostly followed by one of two successors
        nxt = rng.integers(0, len(WORDS), size=(len(WORDS), 2))
        w, text = 0, []
        for _ in range(n_words):
            text.append(WORDS[w])
            w = nxt[w, rng.integers(0, 2)] if rng.random() < 0.9 else rng.integers(0, len(WORDS))
        for word in WORDS:
            self.dictionary.add_word(word)
        split = n_words * 3 // 4
        self.train = self.tokenize(text[:split])
        self.valid = self.tokenize(text[split:])

    def tokenize(self, words):
        ids = [self.dictionary.word2idx[word] for word in words]
        return torch.tensor(ids).type(torch.int64)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    data = data.view(bsz, -1).t().contiguous()
    return data.to(device)


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i : i + seq_len]
    target = source[i + 1 : i + 1 + seq_len].view(-1)
    return data, target


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    else:
        return tuple(repackage_hidden(v) for v in h)


class RNNModel(nn.Module):
    """Container module with an encoder, a recurrent module, and a decoder."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
        super(RNNModel, self).__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if rnn_type in ["LSTM", "GRU"]:
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            if nhid != ninp:
                raise ValueError("When using the tied flag, nhid must be equal to emsize")
            self.decoder.weight = self.encoder.weight
        self.init_weights()
        self.rnn_type = rnn_type
        self.nhid = nhid
        self.nlayers = nlayers

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return torch.nn.functional.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))
        else:
            return weight.new_zeros(self.nlayers, bsz, self.nhid)


def build_model(rnn_type="LSTM", dropout=0.2):
    torch.manual_seed(1111)
    ntokens = len(WORDS)
    return RNNModel(rnn_type, ntokens, 16, 16, 2, dropout, tie_weights=True).to(device)


def train(model, steps=10, lr=5.0, clip=0.25, bptt=7, batch_size=8):
    corpus = Corpus()
    train_data = batchify(corpus.train, batch_size)
    criterion = nn.NLLLoss()
    model.train()
    ntokens = len(corpus.dictionary)
    hidden = model.init_hidden(batch_size)
    losses = []
    i = 0
    for _ in range(steps):
        if i >= train_data.size(0) - 1:
            i = 0
            hidden = model.init_hidden(batch_size)
        data, targets = get_batch(train_data, i, bptt)
        model.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        losses.append(loss.item())
        i += bptt
        assert output.size(1) == ntokens
    return losses, {name: p.grad for name, p in model.named_parameters()}


def evaluate(model, data_source, bptt=7, eval_batch_size=4):
    model.eval()
    total_loss = 0.0
    ntokens = model.ntoken
    hidden = model.init_hidden(eval_batch_size)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, bptt):
            data, targets = get_batch(data_source, i, bptt)
            output, hidden = model(data, hidden)
            hidden = repackage_hidden(hidden)
            total_loss += len(data) * nn.functional.nll_loss(output.view(-1, ntokens), targets).item()
    return total_loss / (len(data_source) - 1)


def main():
    corpus = Corpus()
    val_data = batchify(corpus.valid, 4)
    all_losses = []
    for rnn_type in ("LSTM", "GRU", "RNN_TANH"):
        model = build_model(rnn_type)
        losses, _ = train(model, 40)
        val_loss = evaluate(model, val_data)
        print(f"{rnn_type}: train loss {losses[0]:.3f} -> {losses[-1]:.3f}, valid ppl {math.exp(val_loss):8.2f}")
        all_losses.append(losses)
    return [sum(v) / len(v) for v in zip(*all_losses)]


if __name__ == "__main__":
    main()
