"""Reading one image file the same way everywhere (training, evaluation, predict).

Every image goes through :func:`load_image`: Pillow opens it (JPEG, PNG, BMP,
WebP, ...), EXIF orientation is applied, any mode (grayscale, RGBA, palette,
CMYK, 16-bit) is converted to 8-bit RGB, and it is resized to ``size x size``
with bilinear filtering (aspect ratio not kept, as in
``keras.utils.image_dataset_from_directory``). The result is ``uint8``, values
0..255: the model applies its own preprocessing.

:func:`tf_decodable` says from a file's header whether ``tf.io`` gives the same
pixels; ``aslnb.data.pipeline`` (``decoder='tf'``) sends those files to ``tf.io``,
every other file to :func:`load_image`.
"""
from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FRAME_RE = re.compile(r"^(?P<prefix>.*?)(?P<frame>\d+)$")
# Pillow warns above its MAX_IMAGE_PIXELS (a possible decompression bomb; 89 Mpx unless the
# user sets it, a 6000x4000 photo is 24 Mpx) and refuses twice that. aslnb leaves the setting
# alone and, wherever it opens images, turns the warning into a one-line error naming the file.
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)


@contextlib.contextmanager
def bombs_as_errors(ignore_others: bool = False):
    """Raise Pillow's DecompressionBombWarning as an exception inside the block.

    ``warnings.catch_warnings`` swaps process-global state and is not thread-safe:
    enter this in the calling thread around a pool of workers, never in the workers.
    """
    with warnings.catch_warnings():
        if ignore_others:
            warnings.simplefilter("ignore")
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
        yield


def _guard():
    """:func:`bombs_as_errors` in the main thread; in a worker the caller has set it up."""
    return bombs_as_errors() if threading.current_thread() is threading.main_thread() else contextlib.nullcontext()


def is_image_name(path: str | os.PathLike) -> bool:
    """True when the file name has an image extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def display_path(path: str | os.PathLike) -> str:
    """``path`` as one printable line: names with a newline, another control character or bytes that are
    not valid UTF-8 (``\\udcff``) are shown repr-style."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def frame_number(path: str | os.PathLike) -> int | None:
    """The video frame number in a file name (``A1008.jpg`` -> 1008), or None."""
    m = FRAME_RE.match(Path(path).stem)
    return int(m.group("frame")) if m else None


def utf8_name(path: str | os.PathLike) -> bool:
    """False when the file name holds bytes that are not valid UTF-8 (Python keeps them as surrogates)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (0, 0, 0))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() or 1.0
        img = Image.fromarray((arr * (255.0 / hi)).astype(np.uint8))
    return img.convert("RGB")


# Formats and modes TensorFlow decodes to the pixels Pillow's convert("RGB") gives.
TF_FORMATS = ("JPEG", "PNG", "BMP")
TF_MODES = ("RGB", "L")
_EXIF_ORIENTATION = 0x0112


def tf_decodable(path: str | os.PathLike, size: int | None = None) -> bool:
    """True when ``tf.io`` decodes ``path`` as :func:`load_image` does, up to the resize's rounding.

    Reads the header only. False for other formats (TIFF, WebP, GIF, ...), modes
    (CMYK, RGBA, P, 16-bit), an EXIF orientation other than 1, PNG transparency, a
    file Pillow cannot open, and when Pillow's resize to ``size`` would first
    ``reduce`` the image (``reducing_gap=3``: a side >= 6 x ``size``).
    """
    try:
        with Image.open(path) as img:
            if img.format not in TF_FORMATS or img.mode not in TF_MODES or "transparency" in img.info:
                return False
            if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                return False
            if size is not None and max(img.size[0] // size, img.size[1] // size) >= 6:
                return False
    except Exception:  # noqa: BLE001 - anything odd goes to Pillow, which names the file in its error
        return False
    return True


def load_image(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Decode ``path`` to an RGB ``uint8`` array of shape (size, size, 3).

    Raises :class:`DataError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        with _guard(), Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img = _to_rgb(img)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
            arr = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except _BOMB as exc:
        raise DataError(f"{path}: refused, too many pixels for an image ({exc}); resize it below "
                        f"{Image.MAX_IMAGE_PIXELS} pixels") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(
            f"{path}: not a readable image ({exc.__class__.__name__}: {exc}); "
            "delete or replace it (`aslnb data verify DIR` lists all such files)"
        ) from None
    return arr


def check_image(path: str | os.PathLike) -> str | None:
    """Fully decode ``path``; return None when fine, else the reason it is bad."""
    with bombs_as_errors(ignore_others=True):
        return check_image_in_thread(path)


def check_image_in_thread(path: str | os.PathLike) -> str | None:
    """:func:`check_image` without touching the warning filters, for worker threads: the caller enters
    :func:`bombs_as_errors` once (it is not thread-safe)."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.size[0] < 1 or img.size[1] < 1:
                return "image has zero size"
    except _BOMB as exc:
        return f"too many pixels, a possible decompression bomb ({exc})"
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types (OSError, SyntaxError, ValueError, EOFError...)
        return f"{exc.__class__.__name__}: {exc}"
    return None


def decode_workers() -> int:
    """Threads for decoding a list of files (Pillow and tf.io release the GIL while they decode)."""
    return min(8, (os.cpu_count() or 2) * 2)


def decode_parallel(n: int, size: int, decode: Callable[[int], np.ndarray], workers: int | None = None) -> np.ndarray:
    """``decode(i)`` for ``i`` in ``range(n)``, in parallel threads, into one ``uint8`` array (n, size, size, 3)."""
    out = np.empty((n, size, size, 3), dtype=np.uint8)

    def work(i: int) -> None:
        out[i] = decode(i)

    with bombs_as_errors(), ThreadPoolExecutor(max_workers=workers or decode_workers()) as pool:
        list(pool.map(work, range(n)))
    return out


def load_images(paths: list[str] | np.ndarray, size: int, workers: int | None = None) -> np.ndarray:
    """Decode many files (:func:`load_image`) in parallel threads into one ``uint8`` array (N, size, size, 3)."""
    return decode_parallel(len(paths), size, lambda i: load_image(paths[i], size), workers)
