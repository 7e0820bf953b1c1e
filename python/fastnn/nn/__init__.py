"""fastnn.nn: layers, losses and containers with torch.nn's names and defaults."""
from . import functional, init, utils
from .attention import LayerNorm, MultiheadAttention, PositionalEmbedding, TransformerEncoder, TransformerEncoderLayer
from .modules import (
                        GELU,
                        AdaptiveAvgPool2d,
                        AvgPool2d,
                        BatchNorm1d,
                        BatchNorm2d,
                        BCEWithLogitsLoss,
                        Conv2d,
                        CrossEntropyLoss,
                        Dropout,
                        Embedding,
                        Flatten,
                        Identity,
                        LeakyReLU,
                        Linear,
                        LogSoftmax,
                        MaxPool2d,
                        Module,
                        ModuleList,
                        MSELoss,
                        NLLLoss,
                        Parameter,
                        ReLU,
                        Sequential,
                        Sigmoid,
                        Softmax,
                        Tanh,
)
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase

__all__ = ["functional", "init", "utils", "Module", "Parameter", "Sequential", "ModuleList", "Linear",
           "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "ReLU",
           "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "LogSoftmax", "Flatten", "Identity",
           "Dropout", "Embedding", "CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss",
           "RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell",
           "LayerNorm", "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder",
           "PositionalEmbedding"]
