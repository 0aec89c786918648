"""Turning a stream of per-frame predictions into text, as a webcam speller does.

A camera sees the same hand sign for many frames, and a classifier flickers
between classes while the hand moves. The original recognizer's webcam demo
therefore "debounces": a sign is typed only after it was predicted for ``n``
consecutive frames, and only once while it is held. The rules here:

* a letter predicted ``n`` times in a row is typed once; holding it longer types
  nothing more (to type a double letter, change sign or show ``nothing`` in between);
* ``space`` held ``n`` frames types a space, ``del`` held ``n`` frames deletes the
  last character (nothing happens on empty text);
* ``nothing`` resets the count at once (the hand left the frame);
* optionally, a prediction below ``min_prob`` counts as ``nothing`` (an unsure frame).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

SPACE, DELETE, NOTHING = "space", "del", "nothing"


@dataclass
class Speller:
    """Stateful debouncer: :meth:`feed` one predicted label per frame; :attr:`text` is what was typed."""

    n: int = 3
    min_prob: float = 0.0
    text: str = ""
    events: list[tuple[int, str]] = field(default_factory=list)  # (frame index, what happened)
    _label: str | None = None
    _count: int = 0
    _fired: bool = False
    _frame: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n={self.n!r}: must be an integer >= 1")

    def reset(self) -> None:
        """Forget the current streak (the text stays)."""
        self._label, self._count, self._fired = None, 0, False

    def feed(self, label: str, prob: float = 1.0) -> str | None:
        """Take one frame's prediction; return what it typed (a letter, ``" "``, ``"<del>"``) or None."""
        frame = self._frame
        self._frame += 1
        if label == NOTHING or prob < self.min_prob:
            self.reset()
            return None
        if label == self._label:
            self._count += 1
        else:
            self._label, self._count, self._fired = label, 1, False
        if self._count < self.n or self._fired:
            return None
        self._fired = True
        if label == SPACE:
            out = " "
            self.text += out
        elif label == DELETE:
            out = "<del>"
            self.text = self.text[:-1]
        else:
            out = label
            self.text += out
        self.events.append((frame, out))
        return out


def decode(labels: Iterable[str], n: int = 3, probs: Sequence[float] | None = None, min_prob: float = 0.0) -> str:
    """The text a :class:`Speller` types for the sequence ``labels``."""
    sp = Speller(n=n, min_prob=min_prob)
    labels = list(labels)
    for i, lab in enumerate(labels):
        sp.feed(lab, 1.0 if probs is None else float(probs[i]))
    return sp.text


def signs_for(text: str, n: int = 3, *, hold: int | None = None) -> list[str]:
    """A label sequence that :func:`decode` turns into ``text``: each sign held ``hold`` (>= n) frames,
    with ``nothing`` between equal neighbours (double letters), ``space`` for blanks."""
    hold = n if hold is None else hold
    if hold < n:
        raise ValueError(f"hold={hold} < n={n}: the sign would never be typed")
    out: list[str] = []
    prev = None
    for ch in text:
        sign = SPACE if ch == " " else ch.upper()
        if sign == prev:
            out.append(NOTHING)
        out.extend([sign] * hold)
        prev = sign
    return out
