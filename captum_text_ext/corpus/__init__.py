"""Attributing a whole corpus: ``captum-text-ext attribute``, sharded and resumable, on one process or many.

:func:`attribute_corpus` attributes every example of a corpus (a file of texts, a zoo dataset's split, a list) with
several methods of :data:`~captum_text_ext.explain.METHODS` and stores the per-token scores as ``safetensors`` shards
with a JSON manifest; under ``torchrun`` the processes share the work. :func:`load_attributions` reads a run back
lazily, and :func:`~captum_text_ext.corpus.evaluation.evaluate_run` (``captum-text-ext evaluate``) scores it by the
faithfulness metrics with the model the run names. The modules: :mod:`~captum_text_ext.corpus.texts` (files of texts), :mod:`~captum_text_ext.corpus.source`
(corpora), :mod:`~captum_text_ext.corpus.plan` (the batch plan and per-example seeds),
:mod:`~captum_text_ext.corpus.distributed` (``torch.distributed``), :mod:`~captum_text_ext.corpus.storage` (the
format), :mod:`~captum_text_ext.corpus.runner`, :mod:`~captum_text_ext.corpus.loading` and
:mod:`~captum_text_ext.corpus.evaluation`.
"""

from captum_text_ext.corpus.loading import Attributions, MethodScores, load_attributions
from captum_text_ext.corpus.runner import CorpusRun, attribute_corpus
from captum_text_ext.corpus.source import Corpus, CorpusItem, as_corpus, zoo_dataset
from captum_text_ext.corpus.texts import Text, TextFile, read_texts

__all__ = [
    "Attributions",
    "Corpus",
    "CorpusItem",
    "CorpusRun",
    "MethodScores",
    "Text",
    "TextFile",
    "as_corpus",
    "attribute_corpus",
    "load_attributions",
    "read_texts",
    "zoo_dataset",
]
