"""Datasets: loaders for SST, MR, AG News and IMDB, the synthetic ground-truth corpus, vocabularies (words, WordPiece
subwords) and batching.

Loaders find their files in the ``root`` argument, else ``$CAPTUM_TEXT_EXT_DATA``, else ``~/.cache/captum_text_ext``
(:func:`~captum_text_ext.datasets._paths.candidate_data_dirs`); :func:`download` fetches them for online users.
"""

from captum_text_ext.datasets._paths import (
    DATA_ENV_VAR,
    CorruptDatasetError,
    DatasetNotFoundError,
    candidate_data_dirs,
)
from captum_text_ext.datasets._records import TextDataset, TextExample
from captum_text_ext.datasets._splits import stratified_split
from captum_text_ext.datasets.ag_news import AG_NEWS_CLASS_NAMES, load_ag_news
from captum_text_ext.datasets.arras_lrp import ARRAS_LRP_ARRAYS, arras_lrp_to_torch, load_arras_lrp_model
from captum_text_ext.datasets.collate import (
    BucketBatchSampler,
    TextBatch,
    TextCollator,
    lengths_to_mask,
    pad_sequences,
)
from captum_text_ext.datasets.download import (
    DOWNLOADS,
    ChecksumMismatchError,
    UnsafeArchiveError,
    UnverifiedDownloadError,
    download,
)
from captum_text_ext.datasets.imdb import IMDB_CLASS_NAMES, load_imdb
from captum_text_ext.datasets.mr import MR_CLASS_NAMES, load_mr
from captum_text_ext.datasets.sst import (
    SST_BINARY_CLASS_NAMES,
    SST_FINE_CLASS_NAMES,
    SSTPhrase,
    SSTTree,
    load_arras_sst_test,
    load_sst,
    sst_phrase_examples,
)
from captum_text_ext.datasets.subwords import NO_WORD, SubwordBatch, aggregate_subword_scores, word_ids_tensor
from captum_text_ext.datasets.synthetic import (
    SyntheticExample,
    annotate,
    generate_synthetic,
    label_of,
    load_synthetic,
)
from captum_text_ext.datasets.tokenize import kim_tokenize
from captum_text_ext.datasets.vocab import Vocabulary
from captum_text_ext.datasets.wordpiece import WordPieceTokenizer

__all__ = [
    "AG_NEWS_CLASS_NAMES",
    "ARRAS_LRP_ARRAYS",
    "BucketBatchSampler",
    "ChecksumMismatchError",
    "CorruptDatasetError",
    "DATA_ENV_VAR",
    "DOWNLOADS",
    "DatasetNotFoundError",
    "IMDB_CLASS_NAMES",
    "MR_CLASS_NAMES",
    "NO_WORD",
    "SSTPhrase",
    "SSTTree",
    "SST_BINARY_CLASS_NAMES",
    "SST_FINE_CLASS_NAMES",
    "SubwordBatch",
    "SyntheticExample",
    "TextBatch",
    "TextCollator",
    "TextDataset",
    "TextExample",
    "UnsafeArchiveError",
    "UnverifiedDownloadError",
    "Vocabulary",
    "WordPieceTokenizer",
    "aggregate_subword_scores",
    "annotate",
    "arras_lrp_to_torch",
    "candidate_data_dirs",
    "download",
    "generate_synthetic",
    "kim_tokenize",
    "label_of",
    "lengths_to_mask",
    "load_ag_news",
    "load_arras_lrp_model",
    "load_arras_sst_test",
    "load_imdb",
    "load_mr",
    "load_sst",
    "load_synthetic",
    "pad_sequences",
    "sst_phrase_examples",
    "stratified_split",
    "word_ids_tensor",
]
