"""A dependency-free animated GIF writer for episode videos.

The stack has no image library (no Pillow, imageio or ffmpeg), so episodes
are written as GIF89a files built here with NumPy. Facts of the format
used (GIF89a specification):

* pixels are indices into a 256-colour global palette, compressed with
  variable-width LZW codes packed least-significant bit first;
* with a minimum code size of 8 the codes start 9 bits wide, 256 is the
  clear code and 257 the end code; a decoder adds one table entry per code
  after the first that follows a clear, and widens the codes once the table
  reaches 512 entries. Sending a clear code at least every 254 literal
  codes therefore keeps every code 9 bits wide, so each pixel can be sent
  as its own literal code: no dictionary is needed and any decoder reads
  the stream, at the price of no compression (9 bits per pixel);
* each frame only encodes the bounding box of the pixels that changed since
  the previous frame (drawn over it: disposal method 1), which is what keeps
  mostly static game screens small.

Colour frames are mapped to a fixed palette (a 6 x 6 x 6 colour cube and a
40-level gray ramp, nearest colour); grayscale frames, `[H, W]` or RGB
frames whose three channels are equal (as Gymnasium's `rgb_array` renders
a gray screen), use 256 gray levels exactly.
"""

import struct
from typing import Iterable, List, Optional, Tuple

import numpy as np
import tensorflow as tf

_CLEAR, _END = 256, 257
_LITERALS_PER_CLEAR = 250  # < 254, see the module docstring.
_CUBE_LEVELS = np.round(np.linspace(0, 255, 6)).astype(np.int64)
_RAMP_LEVELS = np.round(np.linspace(0, 255, 42)[1:-1]).astype(np.int64)


def gray_palette() -> np.ndarray:
  """`[256, 3]` uint8 palette whose index i is the gray level i."""
  return np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)


def color_palette() -> np.ndarray:
  """`[256, 3]` uint8 palette: the 216-colour cube, then 40 grays."""
  r, g, b = np.meshgrid(_CUBE_LEVELS, _CUBE_LEVELS, _CUBE_LEVELS,
                        indexing="ij")
  cube = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)
  ramp = np.repeat(_RAMP_LEVELS[:, None], 3, axis=1)
  return np.concatenate([cube, ramp]).astype(np.uint8)


def is_gray(frame: np.ndarray) -> bool:
  """True for `[H, W]` frames and RGB frames with three equal channels."""
  frame = np.asarray(frame)
  return frame.ndim == 2 or bool(
      (frame[..., :1] == frame[..., 1:]).all())


def quantize(frame: np.ndarray,
             gray: Optional[bool] = None) -> Tuple[np.ndarray, np.ndarray]:
  """(palette indices `[H, W]` uint8, palette) of an RGB or gray frame.

  Args:
    frame: `[H, W, 3]` RGB or `[H, W]` gray uint8.
    gray: use the exact gray palette (the first channel of an RGB frame);
      default `is_gray(frame)`.
  """
  frame = np.asarray(frame)
  if is_gray(frame) if gray is None else gray:
    return (frame if frame.ndim == 2 else frame[..., 0]).astype(
        np.uint8), gray_palette()
  pixels = frame.astype(np.int64)
  step = 255.0 / 5.0
  cube_digits = np.clip(np.rint(pixels / step), 0, 5).astype(np.int64)
  cube_index = (cube_digits[..., 0] * 36 + cube_digits[..., 1] * 6 +
                cube_digits[..., 2])
  cube_error = ((pixels - _CUBE_LEVELS[cube_digits]) ** 2).sum(-1)
  # The gray nearest to a colour is the level nearest its channel mean.
  mean = pixels.mean(-1)
  ramp_digit = np.abs(mean[..., None] - _RAMP_LEVELS).argmin(-1)
  ramp_error = ((pixels - _RAMP_LEVELS[ramp_digit][..., None]) ** 2).sum(-1)
  index = np.where(ramp_error < cube_error, 216 + ramp_digit, cube_index)
  return index.astype(np.uint8), color_palette()


def _sub_blocks(data: bytes) -> bytes:
  out = bytearray()
  for start in range(0, len(data), 255):
    chunk = data[start:start + 255]
    out.append(len(chunk))
    out += chunk
  out.append(0)
  return bytes(out)


def _image_data(indices: np.ndarray) -> bytes:
  """LZW stream of literal 9-bit codes with periodic clears."""
  pixels = indices.reshape(-1).astype(np.int64)
  groups = -(-pixels.size // _LITERALS_PER_CLEAR)
  padded = np.full(groups * _LITERALS_PER_CLEAR, -1, np.int64)
  padded[:pixels.size] = pixels
  rows = np.concatenate(
      [np.full((groups, 1), _CLEAR, np.int64),
       padded.reshape(groups, _LITERALS_PER_CLEAR)], axis=1).reshape(-1)
  codes = np.concatenate([rows[rows >= 0], [_END]])
  bits = ((codes[:, None] >> np.arange(9)) & 1).astype(np.uint8).reshape(-1)
  return bytes([8]) + _sub_blocks(
      np.packbits(bits, bitorder="little").tobytes())


def _changed_box(previous, current) -> Tuple[int, int, int, int]:
  """(top, left, height, width) of the pixels that differ (at least 1x1)."""
  if previous is None:
    return 0, 0, current.shape[0], current.shape[1]
  rows = np.flatnonzero((previous != current).any(axis=1))
  cols = np.flatnonzero((previous != current).any(axis=0))
  if rows.size == 0:
    return 0, 0, 1, 1
  return (int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1),
          int(cols[-1] - cols[0] + 1))


def encode(frames: Iterable[np.ndarray], delay_cs: int = 4) -> bytes:
  """An endlessly looping animated GIF of `frames`.

  Args:
    frames: uint8 frames of one size, all `[H, W, 3]` RGB or all `[H, W]`
      grayscale. Frames that are all gray (see `is_gray`) are stored
      exactly; otherwise every frame is mapped to the colour palette.
    delay_cs: display time of each frame in 1/100 s (>= 2; browsers slow
      down smaller delays).

  Returns:
    The GIF file's bytes.

  Raises:
    ValueError: for no frames, mixed sizes or kinds, or a bad shape.
  """
  arrays: List[np.ndarray] = []
  for i, frame in enumerate(frames):
    frame = np.asarray(frame)
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[-1] != 3):
      raise ValueError(f"frames must be [H, W, 3] or [H, W], got frame {i} "
                       f"of shape {frame.shape}.")
    if arrays and frame.shape != arrays[0].shape:
      raise ValueError(
          f"frames must share one shape and kind; frame 0 has shape "
          f"{arrays[0].shape}, frame {i} has shape {frame.shape}.")
    arrays.append(frame)
  if not arrays:
    raise ValueError("frames must not be empty.")
  # One palette for the whole file: a colour video's gray frames (a black
  # screen) must not switch it to the gray one.
  gray = all(is_gray(frame) for frame in arrays)
  quantized = [quantize(frame, gray)[0] for frame in arrays]
  palette = gray_palette() if gray else color_palette()
  height, width = quantized[0].shape
  if not (0 < height < 65536 and 0 < width < 65536):
    raise ValueError(f"frame size {height}x{width} does not fit a GIF.")
  delay_cs = max(2, int(delay_cs))
  out = bytearray(b"GIF89a")
  # Global palette of 2^(7+1) colours, 8 bits per primary.
  out += struct.pack("<HHBBB", width, height, 0xF7, 0, 0)
  out += palette.tobytes()
  out += b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00"  # Loop forever.
  previous = None
  for indices in quantized:
    top, left, box_h, box_w = _changed_box(previous, indices)
    out += struct.pack("<BBBBHBB", 0x21, 0xF9, 4, 1 << 2, delay_cs, 0, 0)
    out += struct.pack("<BHHHHB", 0x2C, left, top, box_w, box_h, 0)
    out += _image_data(indices[top:top + box_h, left:left + box_w])
    previous = indices
  out += b"\x3B"
  return bytes(out)


def write(path: str, frames: Iterable[np.ndarray], delay_cs: int = 4) -> None:
  """Writes `encode(frames, delay_cs)` to `path` (any `tf.io.gfile` path)."""
  data = encode(frames, delay_cs)
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(data)
