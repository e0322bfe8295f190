"""Perceptual colour maps for the attention overlays, as data (slicer-core ships no colour files).

Each map is 33 evenly spaced RGB samples of matplotlib's perceptually uniform maps (inferno,
viridis, cividis; CC0 / BSD); ``table()`` interpolates them linearly to 256 entries, within a few
levels of the original maps.
"""
from __future__ import annotations

TABLE_SIZE = 256

EXPERT_COLORMAPS = {"head": "inferno", "medium": "viridis", "tail": "cividis"}

ANCHORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "inferno": (
        (0, 0, 4), (4, 3, 18), (11, 7, 36), (21, 11, 55), (33, 12, 74), (47, 10, 91),
        (61, 9, 101), (74, 12, 107), (87, 16, 110), (100, 21, 110), (113, 25, 110), (125, 30, 109),
        (138, 34, 106), (151, 39, 102), (163, 44, 97), (176, 49, 91), (188, 55, 84), (199, 62, 76),
        (210, 70, 68), (219, 80, 59), (228, 90, 49), (235, 102, 40), (241, 115, 29), (246, 128, 19),
        (249, 142, 9), (251, 157, 7), (252, 172, 17), (251, 188, 33), (249, 203, 53), (245, 219, 76),
        (242, 234, 105), (243, 246, 138), (252, 255, 164),
    ),
    "viridis": (
        (68, 1, 84), (71, 13, 96), (72, 24, 106), (72, 35, 116), (71, 45, 123), (69, 55, 129),
        (66, 64, 134), (62, 73, 137), (59, 82, 139), (55, 91, 141), (51, 99, 141), (47, 107, 142),
        (44, 114, 142), (41, 122, 142), (38, 130, 142), (35, 137, 142), (33, 145, 140), (31, 152, 139),
        (31, 160, 136), (34, 167, 133), (40, 174, 128), (50, 182, 122), (63, 188, 115), (78, 195, 107),
        (94, 201, 98), (112, 207, 87), (132, 212, 75), (152, 216, 62), (173, 220, 48), (194, 223, 35),
        (216, 226, 25), (236, 229, 27), (253, 231, 37),
    ),
    "cividis": (
        (0, 34, 78), (0, 40, 91), (0, 46, 106), (5, 51, 113), (26, 56, 111), (39, 62, 110),
        (50, 67, 109), (59, 73, 108), (67, 78, 108), (75, 84, 108), (83, 90, 109), (90, 95, 110),
        (97, 101, 111), (104, 106, 113), (111, 112, 115), (118, 118, 118), (125, 124, 120), (132, 130, 121),
        (140, 136, 120), (147, 142, 120), (155, 148, 118), (163, 154, 116), (171, 160, 114), (180, 167, 111),
        (188, 174, 108), (196, 180, 104), (205, 187, 99), (213, 194, 94), (222, 201, 88), (231, 209, 80),
        (240, 216, 70), (249, 224, 58), (254, 232, 56),
    ),
}


def table(name: str, size: int = TABLE_SIZE) -> list[tuple[float, float, float]]:
    """``size`` RGB colours (0..1) from the low to the high end of colour map ``name``."""
    anchors = ANCHORS[name]
    last = len(anchors) - 1
    colors = []
    for i in range(size):
        position = i * last / (size - 1)
        low = min(int(position), last - 1)
        t = position - low
        colors.append(tuple((a + (b - a) * t) / 255.0 for a, b in zip(anchors[low], anchors[low + 1])))
    return colors
