"""The torch.nn and torch.nn.functional names fastnn does not implement. Looking one up on
fastnn.nn or fastnn.nn.functional raises NotImplementedError naming the torch feature, rather
than a bare AttributeError; the error is an AttributeError too, so hasattr() and getattr()
with a default still answer "not there"."""

from .._compat import Unsupported, torch_names

__all__ = ["Unsupported", "missing"]


TORCH_NN = frozenset(
    """
    AdaptiveAvgPool3d AdaptiveLogSoftmaxWithLoss AdaptiveMaxPool1d AdaptiveMaxPool2d AdaptiveMaxPool3d
    AvgPool3d BatchNorm3d CTCLoss ChannelShuffle Container Conv3d
    ConvTranspose3d CosineEmbeddingLoss CrossMapLRN2d EmbeddingBag FeatureAlphaDropout Fold
    FractionalMaxPool2d FractionalMaxPool3d GaussianNLLLoss HingeEmbeddingLoss LPPool1d LPPool2d LPPool3d
    LazyBatchNorm1d LazyBatchNorm2d LazyBatchNorm3d LazyConv1d LazyConv2d LazyConv3d LazyConvTranspose1d
    LazyConvTranspose2d LazyConvTranspose3d LazyInstanceNorm1d LazyInstanceNorm2d LazyInstanceNorm3d
    LazyLinear LinearCrossEntropyLoss LocalResponseNorm MarginRankingLoss MaxPool3d MaxUnpool1d MaxUnpool2d
    MaxUnpool3d MultiLabelMarginLoss MultiLabelSoftMarginLoss MultiMarginLoss NLLLoss2d
    PoissonNLLLoss RMSNorm RReLU SoftMarginLoss Softmax2d SyncBatchNorm
    TripletMarginWithDistanceLoss Unfold
    """.split()
)

TORCH_NN_FUNCTIONAL = frozenset(
    """
    adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool1d_with_indices adaptive_max_pool2d
    adaptive_max_pool2d_with_indices adaptive_max_pool3d adaptive_max_pool3d_with_indices affine_grid
    avg_pool3d celu_ channel_shuffle conv3d conv_tbc conv_transpose3d
    cosine_embedding_loss ctc_loss elu_ embedding_bag feature_alpha_dropout fold fractional_max_pool2d
    fractional_max_pool3d gaussian_nll_loss grid_sample gumbel_softmax hardtanh_ hinge_embedding_loss
    leaky_relu_ local_response_norm lp_pool1d lp_pool2d lp_pool3d margin_ranking_loss
    max_pool1d_with_indices max_pool2d_with_indices max_pool3d max_unpool1d max_unpool2d max_unpool3d
    multi_head_attention_forward multi_margin_loss multilabel_margin_loss multilabel_soft_margin_loss
    pdist poisson_nll_loss relu_ rms_norm rrelu rrelu_ selu_
    soft_margin_loss threshold_ triplet_margin_with_distance_loss unfold
    """.split()
)


def missing(module, torch_module, names, name):
    """The error for module.<name>: Unsupported when torch_module has it (listed in names or in
    torch's public names), else AttributeError."""
    if name in names or name in torch_names(torch_module):
        return Unsupported(f"fastnn has no {torch_module}.{name}: {module}.{name} is not implemented")
    return AttributeError(f"module '{module}' has no attribute '{name}'")
