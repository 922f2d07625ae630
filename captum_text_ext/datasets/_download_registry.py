"""The registry of downloadable datasets, :data:`REGISTERED`: where each file comes from, the checksums it must match,
where each checksum was published, and each dataset's licence or terms.

A :class:`~captum_text_ext.datasets.download.Checksum` is ``verified`` when its value was checked against a known-good
copy of the file, not just copied from where it was published: the git blob ids and the AG News test MD5 below match
the copies in ``shared/data`` (``tests/datasets/test_download.py`` checks this). A blob id can be checked by anyone
against the cited repository and commit (``git ls-tree <commit> -- <path>``).
"""

from __future__ import annotations

from typing import Tuple
from urllib.parse import quote

from captum_text_ext.datasets._download_spec import ArchiveMember, Checksum, DownloadSpec, RemoteFile, Source

__all__ = ["REGISTERED"]

_SHARED_README = "shared/data/README.md"


def _blob_checksum(repo: str, commit: str, path: str, blob: str, shared_copy: str) -> Checksum:
    """The git blob id of ``path`` in ``repo`` at ``commit``, verified against its copy in ``shared/data``.

    Args:
        repo: ``owner/name``.
        commit: the full commit id.
        path: the file's path in the repository.
        blob: its full git blob id, as recorded in ``shared/data/README.md``.
        shared_copy: the copy in ``shared/data`` the blob id matches (``tests/datasets/test_download.py`` checks
            it).
    """
    published = (
        f"git blob id of {path} in the tree of https://github.com/{repo} at commit {commit} "
        f"(`git ls-tree {commit} -- {path}`), recorded in {_SHARED_README}; matches the shared copy {shared_copy}"
    )
    return Checksum("git-blob-sha1", blob, published, verified=True)


def _github_file(repo: str, commit: str, path: str, blob: str, filename: str, shared_copy: str) -> RemoteFile:
    """A file stored as is from ``raw.githubusercontent.com`` at a pinned commit, checked by its git blob id.

    Args:
        repo: ``owner/name``.
        commit: the full commit id.
        path: the file's path in the repository.
        blob: its full git blob id.
        filename: the name it is stored under.
        shared_copy: the copy in ``shared/data`` the blob id matches.
    """
    return RemoteFile(
        url=f"https://raw.githubusercontent.com/{repo}/{commit}/{quote(path)}",
        filename=filename,
        checksums=(_blob_checksum(repo, commit, path, blob, shared_copy),),
    )


_RNTN = ("munikarmanish/RNTN", "12bb731ba9fbdcdf2368b8515a241773f2b97547")
_RNTN_ON_SPARK = ("iron-fe/rntn_on_Spark", "c42e0605cdc05ea9526ae4d93ade1d6ced1a562e")
_CNN_TEXT = ("dennybritz/cnn-text-classification-tf", "18762b459e21d9c70e5c242f8d43fc4e6db37a0d")
_CHARCNN = ("mhjabreel/CharCnn_Keras", "555590db4219b1243abb1918effd6a7425a2d75f")
_ARRAS = ("ArrasL/LRP_for_LSTM", "1c3073b6e7ff604df1b0f2843f7cab3824030593")


def _torchtext(path: str, commit: str, variable: str) -> str:
    """Where torchtext publishes a checksum: ``variable`` in ``path`` of pytorch/text at ``commit``."""
    return f"{variable} in {path} of https://github.com/pytorch/text at commit {commit}"


_SST = DownloadSpec(
    name="sst",
    licence=(
        "No licence statement in the source repositories, and no explicit licence found on the official page "
        "https://nlp.stanford.edu/sentiment/; distributed for research. Cite Socher et al. 2013."
    ),
    sources=(
        Source(
            "github",
            (
                _github_file(
                    *_RNTN_ON_SPARK, "trees/train副本.txt", "1c5317f7ccdc638e30091da2605654f0755e7ab5", "train.txt",
                    "shared/data/sst/train.txt.gz",
                ),
                _github_file(
                    *_RNTN, "trees/dev.txt", "bbc5d06608f69bfc42ebb1e06f20012409c36697", "dev.txt",
                    "shared/data/sst/dev.txt.gz",
                ),
                _github_file(
                    *_RNTN, "trees/test.txt", "90684652f42dbd0cb7e2c849baa80eb31f292c5e", "test.txt",
                    "shared/data/sst/test.txt.gz",
                ),
            ),
        ),
        Source(
            "official",
            (
                RemoteFile(
                    url="http://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip",
                    filename="trainDevTestTrees_PTB.zip",
                    action="zip",
                    checksums=(
                        Checksum(
                            "md5",
                            "5c3b23ce88089053fd3efeb4a34f614d",
                            _torchtext("torchtext/datasets/sst.py", "560c86640bf2b8977ac7e8345792afe15cedff3f", "MD5"),
                            verified=False,
                        ),
                    ),
                    members=(
                        ArchiveMember("trees/train.txt", "train.txt"),
                        ArchiveMember("trees/dev.txt", "dev.txt"),
                        ArchiveMember("trees/test.txt", "test.txt"),
                    ),
                ),
            ),
        ),
    ),
    default_source="github",
)

_MR = DownloadSpec(
    name="mr",
    licence=(
        "No explicit licence; distributed by the authors for research. Cite Pang & Lee 2005. (The GitHub source "
        "repository is Apache-2.0, but that covers its code, not this third-party data.)"
    ),
    sources=(
        Source(
            "github",
            (
                _github_file(
                    *_CNN_TEXT, "data/rt-polaritydata/rt-polarity.pos", "16fe13880ebd3241c5e8a485d31588ac2884d6d7",
                    "rt-polarity.pos", "shared/data/mr/rt-polarity.pos.gz",
                ),
                _github_file(
                    *_CNN_TEXT, "data/rt-polaritydata/rt-polarity.neg", "c3a869462ce54dbb10b05f6a32e0869b8102f94c",
                    "rt-polarity.neg", "shared/data/mr/rt-polarity.neg.gz",
                ),
            ),
        ),
        Source(
            "official",
            (
                RemoteFile(
                    url="https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz",
                    filename="rt-polaritydata.tar.gz",
                    action="tar.gz",
                    members=(
                        # The originals are Windows-1252; the loaders read UTF-8 (the GitHub copies are UTF-8).
                        ArchiveMember("rt-polaritydata/rt-polarity.pos", "rt-polarity.pos", recode_from="cp1252"),
                        ArchiveMember("rt-polaritydata/rt-polarity.neg", "rt-polarity.neg", recode_from="cp1252"),
                    ),
                ),
            ),
        ),
    ),
    default_source="github",
)

_AG_NEWS_TEST_MD5 = (
    _torchtext("torchtext/datasets/ag_news.py", "01085ab916ab9397649da3724f4eba0cdc15a480", "MD5['test']")
    + "; matches the shared copy shared/data/ag_news/test.csv.gz (measured)"
)

_AG_NEWS_TRAIN = RemoteFile(
    url=f"https://raw.githubusercontent.com/{_CHARCNN[0]}/{_CHARCNN[1]}/data/ag_news_csv/train.csv",
    filename="train.csv",
    checksums=(
        Checksum(
            "md5",
            "b1a00f826fdfbd249f79597b59e1dc12",
            _torchtext("torchtext/datasets/ag_news.py", "01085ab916ab9397649da3724f4eba0cdc15a480",
                       "MD5['train']"),
            verified=False,
        ),
        Checksum(
            "git-blob-sha1",
            "694aa19971315410e000404523796b76349d3c1d",
            f"git blob id of data/ag_news_csv/train.csv in https://github.com/{_CHARCNN[0]}, recorded "
            f"in {_SHARED_README} (section 'Not included'); no copy here to check it against",
            verified=False,
        ),
    ),
)

_AG_NEWS_TEST = RemoteFile(
    url=f"https://raw.githubusercontent.com/{_CHARCNN[0]}/{_CHARCNN[1]}/data/ag_news_csv/test.csv",
    filename="test.csv",
    checksums=(
        Checksum("md5", "d52ea96a97a2d943681189a97654912d", _AG_NEWS_TEST_MD5, verified=True),
        _blob_checksum(
            *_CHARCNN, "data/ag_news_csv/test.csv", "130b40c3329c993468b8ed8a22c331315e478e0a",
            "shared/data/ag_news/test.csv.gz",
        ),
    ),
)

_AG_NEWS_CLASSES = RemoteFile(
    url=f"https://raw.githubusercontent.com/{_CHARCNN[0]}/{_CHARCNN[1]}/data/ag_news_csv/classes.txt",
    filename="classes.txt",
    checksums=(
        Checksum(
            "git-blob-sha1",
            "e0a3d189cb86add99438018b1e218d3177919dc5",
            f"not published: measured here from the copy shared/data/ag_news/classes.txt.gz, taken "
            f"from https://github.com/{_CHARCNN[0]} at commit {_CHARCNN[1]} like test.csv, whose "
            f"copy matches the published MD5",
            verified=True,
        ),
    ),
)

_AG_NEWS = DownloadSpec(
    name="ag_news",
    licence=(
        "Research and non-commercial use only: the dataset's readme says the AG corpus is provided by the academic "
        "community for research purposes in data mining, information retrieval, xml, data compression, data "
        "streaming, and any other non-commercial activity. Cite Zhang et al. 2015."
    ),
    sources=(
        # What `load_ag_news(source="offline")` reads: the official test split and the class names, all verified.
        Source("offline", (_AG_NEWS_TEST, _AG_NEWS_CLASSES)),
        # What `load_ag_news(source="official")` reads; train.csv has published checksums nobody here could check.
        Source("official", (_AG_NEWS_TRAIN, _AG_NEWS_TEST, _AG_NEWS_CLASSES)),
    ),
    default_source="offline",
)

_IMDB = DownloadSpec(
    name="imdb",
    licence=(
        f"No terms recorded in {_SHARED_README} (IMDB is not stored there); see "
        "http://ai.stanford.edu/~amaas/data/sentiment/ and cite Maas et al. 2011."
    ),
    sources=(
        Source(
            "official",
            (
                RemoteFile(
                    url="http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                    filename="aclImdb_v1.tar.gz",
                    action="tar.gz",
                    checksums=(
                        Checksum(
                            "md5",
                            "7c2ac02c03563afcf9b574c7e56c153a",
                            _torchtext("torchtext/datasets/imdb.py", "003eae6f1eed2665451c972107b135abd7e731d6", "MD5"),
                            verified=False,
                        ),
                    ),
                    members=(ArchiveMember("aclImdb/", "aclImdb/"),),
                ),
            ),
        ),
    ),
    default_source="official",
)

_ARRAS_LRP = DownloadSpec(
    name="arras_lrp",
    licence=(
        "Academic use only: the LICENSE of ArrasL/LRP_for_LSTM (2-clause-BSD-style) reads \"Copyright (c) 2017, "
        "Leila Arras, Gregoire Montavon, Klaus-Robert Mueller, Wojciech Samek. All rights reserved. Free for "
        "academic use only. Patent pending.\" The weights were trained by Li et al. 2016 (no licence file seen in "
        "their repository). Cite Li et al. 2016, Arras et al. 2017 and Socher et al. 2013."
    ),
    sources=(
        Source(
            "github",
            (
                _github_file(
                    *_ARRAS, "model/model", "2a4afc76bb1645a467e969eb36565bd7d1fb4ec6", "model",
                    "shared/data/arras_lrp/model.gz",
                ),
                _github_file(
                    *_ARRAS, "model/vocab", "94f445f0172420b9f1dad0b8fa11f79692c8b50d", "vocab",
                    "shared/data/arras_lrp/vocab.gz",
                ),
                _github_file(
                    *_ARRAS, "data/sequence_test.txt", "f7da720f6415a0e72cb3d85c2e1444f76973bc2c",
                    "sequence_test.txt", "shared/data/arras_lrp/sequence_test.txt.gz",
                ),
            ),
        ),
    ),
    default_source="github",
)

REGISTERED: Tuple[DownloadSpec, ...] = (_SST, _MR, _AG_NEWS, _IMDB, _ARRAS_LRP)
"""Every downloadable dataset (:data:`captum_text_ext.datasets.download.DOWNLOADS` indexes them by name)."""
