"""Reference text classifiers, their registry and checkpoints, and their training loop."""

from captum_text_ext.models._base import embedding_forward
from captum_text_ext.models.bag_of_words import BagOfWordsMLP, bag_of_words
from captum_text_ext.models.checkpoints import (
    Checkpoint,
    default_cache_dir,
    load_checkpoint,
    record_checkpoint,
    save_checkpoint,
    weights_sha256,
)
from captum_text_ext.models.embedding_cnn import EmbeddingCNN
from captum_text_ext.models.kim_cnn import KimCNN
from captum_text_ext.models.lstm_classifier import LSTMClassifier
from captum_text_ext.models.registry import ARCHITECTURES, architecture_name, build_model
from captum_text_ext.models.text_cnn import TextCNN
from captum_text_ext.models.training import FitResult, accuracy, fit
from captum_text_ext.models.transformer_classifier import TransformerClassifier

__all__ = [
    "ARCHITECTURES",
    "BagOfWordsMLP",
    "Checkpoint",
    "EmbeddingCNN",
    "FitResult",
    "KimCNN",
    "LSTMClassifier",
    "TextCNN",
    "TransformerClassifier",
    "accuracy",
    "architecture_name",
    "bag_of_words",
    "build_model",
    "default_cache_dir",
    "embedding_forward",
    "fit",
    "load_checkpoint",
    "record_checkpoint",
    "save_checkpoint",
    "weights_sha256",
]
