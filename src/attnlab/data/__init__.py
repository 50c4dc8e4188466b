"""Data: tokenizers (char, byte-level BPE, WordPiece), datasets for the three tasks, bucketing and collation."""

from attnlab.data.batching import (
    IGNORE_INDEX,
    BucketBatchSampler,
    ClassificationCollator,
    LMCollator,
    Seq2SeqCollator,
)
from attnlab.data.datasets import (
    ClassificationDataset,
    LMBlocks,
    LMData,
    ParallelDataset,
    encode_text,
    infer_classes,
    read_classification_tsv,
    read_parallel,
    split_text,
)
from attnlab.data.io import DataError, read_lines, read_text
from attnlab.data.tokenizer import EncodedBatch, Tokenizer, pad_sequences

__all__ = [
    "IGNORE_INDEX",
    "BucketBatchSampler",
    "ClassificationCollator",
    "ClassificationDataset",
    "DataError",
    "EncodedBatch",
    "LMBlocks",
    "LMCollator",
    "LMData",
    "ParallelDataset",
    "Seq2SeqCollator",
    "Tokenizer",
    "encode_text",
    "infer_classes",
    "pad_sequences",
    "read_classification_tsv",
    "read_lines",
    "read_parallel",
    "read_text",
    "split_text",
]
