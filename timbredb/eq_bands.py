"""Audealize's 40-band peaking EQ layout (plain constants; timbredb.dsp renders with them).

Kept apart from timbredb.dsp, which imports scipy.signal: the socialfx-eq model and the
dataset readers need only the band centres, and `timbredb ingest` should not pay for scipy.
"""

#: Centre frequencies (Hz) of Audealize's 40 peaking EQ bands (Q = 4.31).
EQ_CENTRES_HZ: tuple[float, ...] = (
    20, 50, 83, 120, 161, 208, 259, 318, 383, 455, 537, 628, 729, 843, 971, 1114, 1273, 1452,
    1652, 1875, 2126, 2406, 2719, 3070, 3462, 3901, 4392, 4941, 5556, 6244, 7014, 7875, 8839,
    9917, 11124, 12474, 13984, 15675, 17566, 19682,
)
EQ_Q = 4.31
