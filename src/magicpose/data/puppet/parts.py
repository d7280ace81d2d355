"""Labels of the part map that the puppet renderer draws alongside every frame.

The label map is the ground truth that only a synthetic world has: it says which pixels are skin,
hair or clothes, so that identity colour errors can be measured per region.
"""

from __future__ import annotations

from enum import IntEnum


class Part(IntEnum):
    BACKGROUND = 0
    SKIN = 1
    HAIR = 2
    TOP = 3
    BOTTOM = 4
    SHOES = 5
    EYE_WHITE = 6
    IRIS = 7
    BROW = 8
    LIPS = 9
    MOUTH = 10


#: Regions over which identity colour error is measured (face details are too small at 128 px).
IDENTITY_REGIONS: dict[str, tuple[Part, ...]] = {
    "skin": (Part.SKIN,),
    "hair": (Part.HAIR,),
    "top": (Part.TOP,),
    "bottom": (Part.BOTTOM,),
}
