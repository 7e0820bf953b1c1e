"""NumPy references of every op in fastnn.ops: same names and signatures, float64 inside."""

from .act import (
    gelu_backward,
    gelu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from .attention import scaled_dot_product_attention_backward, scaled_dot_product_attention_forward
from .batchnorm import batch_norm2d_backward, batch_norm2d_forward
from .conv2d import (
    conv2d_backward_bias,
    conv2d_backward_data,
    conv2d_backward_weight,
    conv2d_forward,
    conv_transpose2d_backward_bias,
    conv_transpose2d_backward_data,
    conv_transpose2d_backward_weight,
    conv_transpose2d_forward,
)
from .embedding import embedding_backward, embedding_forward
from .gemm import gemm
from .layernorm import layer_norm_backward, layer_norm_forward
from .optim import adam_step, grad_norm, sgd_step
from .pool2d import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .softmax import (
    cross_entropy_backward,
    cross_entropy_forward,
    log_softmax_backward,
    log_softmax_forward,
    softmax_backward,
    softmax_forward,
)
from .word2vec import (
    word2vec_cbow_step,
    word2vec_count_file,
    word2vec_sg_step,
    word2vec_train,
    word2vec_train_file,
)

__all__ = [
    "gemm",
    "conv2d_forward",
    "conv2d_backward_data",
    "conv2d_backward_weight",
    "conv2d_backward_bias",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward_data",
    "conv_transpose2d_backward_weight",
    "conv_transpose2d_backward_bias",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "global_avg_pool2d_backward",
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "gelu_forward",
    "gelu_backward",
    "softmax_forward",
    "softmax_backward",
    "log_softmax_forward",
    "log_softmax_backward",
    "cross_entropy_forward",
    "cross_entropy_backward",
    "sgd_step",
    "adam_step",
    "grad_norm",
    "batch_norm2d_forward",
    "batch_norm2d_backward",
    "embedding_forward",
    "embedding_backward",
    "layer_norm_forward",
    "layer_norm_backward",
    "scaled_dot_product_attention_forward",
    "scaled_dot_product_attention_backward",
    "word2vec_train",
    "word2vec_train_file",
    "word2vec_count_file",
    "word2vec_sg_step",
    "word2vec_cbow_step",
]
