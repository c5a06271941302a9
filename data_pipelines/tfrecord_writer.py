"""Vectorised tf.train.Example serialisation and TFRecord framing, without TensorFlow.

Why not `tf.io.TFRecordWriter` and `tf.train.Example.SerializeToString()`? Importing
TensorFlow costs several seconds here and a per-record proto build costs tens of
microseconds; the whole corpus conversion must take a few seconds. Both formats are simple
and stable, so a batch of N records is encoded at once with numpy:

* tf.train.Example wire format (protobuf): Example{1: Features{1: map entry{1: key,
  2: Feature{2: FloatList{1: packed float} | 3: Int64List{1: packed varint}}}}}.
* TFRecord framing: uint64 length (little endian), masked crc32c of those 8 bytes, the data,
  masked crc32c of the data. crc32c is the Castagnoli CRC (reflected polynomial 0x82F63B78);
  "masked" is ((crc >> 15) | (crc << 17)) + 0xa282ead8, as in TensorFlow's record writer.

The tests check the bytes against TensorFlow's own writer and parser.
Shape legend: N records, S = max_seq_length, P = max_predictions_per_seq.
"""

from __future__ import annotations

import contextlib

import numpy as np

from data_pipelines import features as features_lib
from data_pipelines import storage

_CRC32C_POLYNOMIAL = 0x82F63B78
_CRC_MASK_DELTA = 0xA282EAD8


def _crc32c_byte_table() -> np.ndarray:
    """[256] uint32: the register after feeding one zero byte into register value i."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_CRC32C_POLYNOMIAL), table >> 1)
    return table.astype(np.uint32)


_CRC32C_BYTE_TABLE = _crc32c_byte_table()


def _zero_bytes_step(register: np.ndarray, num_bytes: int) -> np.ndarray:
    """Feeds `num_bytes` zero bytes into registers [...] uint32 (one table step per byte)."""
    for _ in range(num_bytes):
        register = _CRC32C_BYTE_TABLE[register & 0xFF] ^ (register >> 8)
    return register


class _ZeroShift:
    """The linear map "feed 4 * words zero bytes" on 32-bit CRC registers, as two 16-bit tables.

    Feeding zero bytes is linear over GF(2), so the map is fixed by its value on the 32 bit
    vectors and applied with two table look-ups per register.
    """

    def __init__(self, words: int, previous: "_ZeroShift | None" = None):
        basis = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))
        # Twice the previous shift instead of 4 * words byte steps: log-many tables stay cheap.
        image = previous(previous(basis)) if previous else _zero_bytes_step(basis, 4 * words)
        index = np.arange(1 << 16, dtype=np.uint32)
        self.low = np.zeros(1 << 16, np.uint32)
        self.high = np.zeros(1 << 16, np.uint32)
        for bit in range(16):
            has_bit = ((index >> bit) & 1).astype(bool)
            self.low[has_bit] ^= image[bit]
            self.high[has_bit] ^= image[bit + 16]

    def __call__(self, register: np.ndarray) -> np.ndarray:
        return self.low[register & 0xFFFF] ^ self.high[register >> 16]


_ZERO_SHIFTS: list[_ZeroShift] = []  # _ZERO_SHIFTS[l] feeds 4 * 2**l zero bytes.
_INITIAL_REGISTER_EFFECT = np.full([1], 0xFFFFFFFF, np.uint32)  # [L]: init after L bytes.


def _zero_shift(level: int) -> _ZeroShift:
    while len(_ZERO_SHIFTS) <= level:
        _ZERO_SHIFTS.append(
            _ZeroShift(1 << len(_ZERO_SHIFTS), _ZERO_SHIFTS[-1] if _ZERO_SHIFTS else None)
        )
    return _ZERO_SHIFTS[level]


def _initial_register_effect(max_length: int) -> np.ndarray:
    """[max_length + 1] uint32: the initial register 0xFFFFFFFF after L zero bytes."""
    global _INITIAL_REGISTER_EFFECT
    known = _INITIAL_REGISTER_EFFECT
    if known.size <= max_length:
        extra = [known[-1]]
        for _ in range(max_length + 1 - known.size):
            extra.append(_zero_bytes_step(extra[-1], 1))
        _INITIAL_REGISTER_EFFECT = np.concatenate([known, np.asarray(extra[1:], np.uint32)])
    return _INITIAL_REGISTER_EFFECT


def crc32c_rows(padded_rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """crc32c of each row's first `lengths[i]` bytes, all rows at once.

    Args:
      padded_rows: [N, L] uint8, row i holds its message left aligned (tail is ignored).
      lengths: [N] message lengths, each <= L.
    Returns:
      [N] uint32 crc32c values (unmasked).
    """
    lengths = np.asarray(lengths, np.int64)
    max_length = padded_rows.shape[1]
    keep = np.arange(max_length) < lengths[:, None]
    return _crc32c_of_concatenated(padded_rows[keep], lengths)


def _crc32c_of_concatenated(messages: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """crc32c of N messages stored back to back in the flat uint8 array `messages`.

    crc32c is affine over GF(2): crc(m) = Z^len(m)(0xFFFFFFFF) ^ R(m) ^ 0xFFFFFFFF, where Z
    feeds one zero byte and R is the CRC with a zero initial register, which leading zero
    bytes do not change. So each message is right aligned behind zeros, cut into 4-byte words
    w_0..w_{n-1}, and R = Z^4(sum_m Z^(4(n-1-m)) w_m) is reduced pairwise in log2(n) vector
    steps (pair (a, b) -> Z^(4*2^l) a ^ b), instead of a byte-serial loop.
    """
    lengths = np.asarray(lengths, np.int64)
    num_rows = lengths.shape[0]
    if num_rows == 0:
        return np.zeros([0], np.uint32)
    max_length = int(lengths.max())
    num_words = 1
    while 4 * num_words < max_length:
        num_words *= 2
    width = 4 * num_words
    right_aligned = np.zeros([num_rows, width], np.uint8)
    row_ends = np.cumsum(lengths)
    # Message byte b of row i goes to flat slot i * width + width - length_i + (b - start_i).
    destination_shift = np.arange(1, num_rows + 1) * width - row_ends
    right_aligned.reshape(-1)[
        np.repeat(destination_shift, lengths) + np.arange(int(row_ends[-1]))
    ] = messages
    words = right_aligned.view("<u4").T.copy()  # [n, N]: word m of every row
    level = 0
    while words.shape[0] > 1:
        words = _zero_shift(level)(words[0::2]) ^ words[1::2]
        level += 1
    zero_init_crc = _zero_shift(0)(words[0])
    return _initial_register_effect(max_length)[lengths] ^ zero_init_crc ^ np.uint32(0xFFFFFFFF)


def masked_crc32c(crc: np.ndarray) -> np.ndarray:
    """TFRecord's masked crc: rotate right by 15 and add a constant (uint32 arithmetic)."""
    crc = crc.astype(np.uint64)
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    return ((rotated + _CRC_MASK_DELTA) & 0xFFFFFFFF).astype(np.uint32)


def _varint_columns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Protobuf varints of non-negative integers, one fixed-width column group per value.

    Args:
      values: [N, n] non-negative integers.
    Returns:
      bytes [N, n * K] uint8 and present [N, n * K] bool (None when every byte is present),
      K the widest varint in the batch; the varint of value (i, j) is
      bytes[i, j*K : j*K + K][present[i, j*K : j*K + K]].
    """
    values = np.asarray(values)
    num_rows = values.shape[0]
    if values.size and values.min() < 0:
        raise ValueError(
            f"negative value {values.min()} cannot be written as a pretraining feature"
        )
    max_value = int(values.max()) if values.size else 0
    width = max(1, (max_value.bit_length() + 6) // 7)
    if width == 1:  # The common case for masks, segment ids and labels: bytes are the values.
        return values.astype(np.uint8).reshape(num_rows, -1), None
    values = values.astype(np.uint64 if width > 4 else np.uint32)
    byte_columns, present_columns = [], []
    for k in range(width):
        group = (values >> (7 * k)) & 0x7F
        if k + 1 < width:
            group |= (values >= (1 << (7 * (k + 1)))).astype(values.dtype) << 7
        byte_columns.append(group.astype(np.uint8))
        present_columns.append(values >= (1 << (7 * k)) if k else np.ones(values.shape, bool))
    encoded = np.stack(byte_columns, axis=-1).reshape(num_rows, -1)
    present = np.stack(present_columns, axis=-1).reshape(num_rows, -1)
    return encoded, present


class _RowAssembler:
    """Concatenates per-row byte pieces (constant or variable length) into packed rows."""

    def __init__(self, num_rows: int):
        self.num_rows = num_rows
        self.pieces: list[tuple[np.ndarray, np.ndarray | None]] = []

    def constant(self, data: bytes) -> None:
        row = np.frombuffer(data, np.uint8)
        self.pieces.append((np.broadcast_to(row, (self.num_rows, row.size)), None))

    def varint(self, values: np.ndarray) -> None:
        """Appends one varint per row."""
        encoded, present = _varint_columns(values.reshape(self.num_rows, 1))
        self.pieces.append((encoded, present))

    def raw(self, data: np.ndarray, present: np.ndarray | None = None) -> None:
        self.pieces.append((data, present))

    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns (flat uint8 bytes of all rows back to back, [N] row lengths)."""
        data = np.concatenate([piece for piece, _ in self.pieces], axis=1)
        present = np.concatenate(
            [np.ones(piece.shape, bool) if mask is None else mask for piece, mask in self.pieces],
            axis=1,
        )
        return data[present], present.sum(axis=1)


def _varint_size(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.int64)
    size = np.ones(values.shape, np.int64)
    for k in range(1, 10):
        size += values >= (1 << (7 * k))
    return size


def serialize_examples(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Serialises N pretraining records to tf.train.Example bytes.

    Args:
      arrays: the seven features (see features.py): input_ids, input_mask, segment_ids [N, S];
        masked_lm_positions, masked_lm_ids [N, P] ints; masked_lm_weights [N, P] float;
        next_sentence_labels [N] or [N, 1].
    Returns:
      (flat uint8 array of the N serialised Examples back to back, [N] byte lengths).
    """
    num_rows = int(np.asarray(arrays["input_ids"]).shape[0])
    # Each feature's map entry is a nested message, so sizes are computed inside out first.
    encoded_features = []  # (spec, payload bytes, payload present, payload length [N])
    for spec in features_lib.PRETRAINING_FEATURES:
        values = np.asarray(arrays[spec.name]).reshape(num_rows, -1)
        if spec.dtype == "float32":
            payload = (
                np.ascontiguousarray(values.astype("<f4")).view(np.uint8).reshape(num_rows, -1)
            )
            encoded_features.append((spec, payload, None, np.full([num_rows], payload.shape[1])))
        else:
            payload, present = _varint_columns(values)
            payload_length = (
                np.full([num_rows], payload.shape[1]) if present is None else present.sum(axis=1)
            )
            encoded_features.append((spec, payload, present, payload_length))

    feature_entries = []  # (spec, payload, present, payload length, list length, feature length, entry length)
    features_length = np.zeros([num_rows], np.int64)
    for spec, payload, present, payload_length in encoded_features:
        list_length = 1 + _varint_size(payload_length) + payload_length
        feature_length = 1 + _varint_size(list_length) + list_length
        key = spec.name.encode()
        entry_length = 2 + len(key) + 1 + _varint_size(feature_length) + feature_length
        features_length += 1 + _varint_size(entry_length) + entry_length
        feature_entries.append(
            (spec, payload, present, payload_length, list_length, feature_length, entry_length)
        )

    rows = _RowAssembler(num_rows)
    rows.constant(b"\x0a")  # Example.features
    rows.varint(features_length)
    for (
        spec,
        payload,
        present,
        payload_length,
        list_length,
        feature_length,
        entry_length,
    ) in feature_entries:
        key = spec.name.encode()
        rows.constant(b"\x0a")  # Features.feature map entry
        rows.varint(entry_length)
        rows.constant(b"\x0a" + bytes([len(key)]) + key + b"\x12")  # entry key, then entry value
        rows.varint(feature_length)
        rows.constant(b"\x12" if spec.dtype == "float32" else b"\x1a")  # float_list | int64_list
        rows.varint(list_length)
        rows.constant(b"\x0a")  # FloatList.value | Int64List.value, packed
        rows.varint(payload_length)
        rows.raw(payload, present)
    return rows.packed()


def frame_records(payloads: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wraps N back-to-back payloads in TFRecord framing.

    Args:
      payloads: flat uint8, the N payloads back to back.
      lengths: [N] payload lengths.
    Returns:
      (flat uint8 TFRecord bytes of the N records, [N] framed record lengths = lengths + 16).
    """
    lengths = np.asarray(lengths, np.int64)
    num_rows = lengths.shape[0]
    if num_rows == 0:
        return np.zeros([0], np.uint8), np.zeros([0], np.int64)
    length_bytes = lengths.astype("<u8").view(np.uint8).reshape(num_rows, 8)
    length_crc = masked_crc32c(
        _crc32c_of_concatenated(length_bytes.reshape(-1), np.full([num_rows], 8))
    )
    data_crc = masked_crc32c(_crc32c_of_concatenated(payloads, lengths))
    framed_lengths = lengths + 16
    record_starts = np.cumsum(framed_lengths) - framed_lengths
    framed = np.empty([int(framed_lengths.sum())], np.uint8)
    header = np.concatenate(
        [length_bytes, length_crc.astype("<u4").view(np.uint8).reshape(-1, 4)], axis=1
    )
    framed[record_starts[:, None] + np.arange(12)] = header
    payload_starts = np.cumsum(lengths) - lengths
    framed[np.repeat(record_starts + 12 - payload_starts, lengths) + np.arange(payloads.size)] = (
        payloads
    )
    framed[(record_starts + 12 + lengths)[:, None] + np.arange(4)] = (
        data_crc.astype("<u4").view(np.uint8).reshape(-1, 4)
    )
    return framed, framed_lengths


def encode_tfrecords(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """serialize_examples + frame_records: N records' TFRecord bytes and their [N] lengths."""
    return frame_records(*serialize_examples(arrays))


class RoundRobinTFRecordWriter:
    """Writes framed records to several files, record k going to file k % len(files).

    This is the original writer's spreading rule, kept across calls so that the output does not
    depend on how the records were batched.

    Used as a context manager, the files are written all or nothing (storage.atomic_write):
    records go to temporary files beside the outputs, renamed over them only when the block
    ends without an error, so a failed or killed run leaves any previous outputs untouched.
    """

    def __init__(self, output_files: list[str]):
        if not output_files:
            raise ValueError("no output file given")
        self.output_files = list(output_files)
        if len(set(map(storage.absolute, self.output_files))) < len(self.output_files):
            raise ValueError(f"output files {self.output_files} name the same file twice")
        self._stack = contextlib.ExitStack()
        try:
            self._files = [self._stack.enter_context(storage.atomic_write(path, "wb"))
                           for path in self.output_files]
        except BaseException:
            self._stack.close()
            raise
        self.records_written = 0
        self.bytes_written = 0

    def write(self, framed: np.ndarray, framed_lengths: np.ndarray) -> None:
        """Writes N framed records (as returned by frame_records / encode_tfrecords)."""
        num_files = len(self._files)
        if num_files == 1:
            self._files[0].write(framed.tobytes())
        else:
            ends = np.cumsum(framed_lengths)
            starts = ends - framed_lengths
            buffer = memoryview(framed)
            for k, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
                self._files[(self.records_written + k) % num_files].write(buffer[start:end])
        self.records_written += len(framed_lengths)
        self.bytes_written += int(framed.size)

    def close(self) -> None:
        """Renames the finished files over the outputs."""
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        # An error in the block reaches every atomic_write, which then removes its temporary
        # file instead of renaming it: no output is replaced.
        return self._stack.__exit__(*exc_info)
