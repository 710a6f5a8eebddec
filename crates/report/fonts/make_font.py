"""The font figures embed: DejaVu Sans (Bitstream Vera / DejaVu licence, see LICENSE-DejaVu.txt)
cut down with fontTools to the characters figure text uses (ASCII, Latin-1, ±, −, †, –, —, …,
Greek letters for metric names), so PNG figures render the same on a machine without fonts.

    pip install fonttools
    python make_font.py /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf   # Debian fonts-dejavu-core
"""
import os
import sys

from fontTools import subset

src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "DejaVuSans-subset.ttf")
unicodes = list(range(0x20, 0x7F)) + list(range(0xA0, 0x100)) + list(range(0x391, 0x3CA)) + [
    0x2212, 0x2020, 0x2013, 0x2014, 0x2026, 0x2192, 0x2264, 0x2265, 0x00D7, 0x0394,
]
opts = subset.Options()
opts.layout_features = []
opts.hinting = False
opts.name_IDs = ["*"]
opts.notdef_outline = True
font = subset.load_font(src, opts)
sub = subset.Subsetter(opts)
sub.populate(unicodes=unicodes)
sub.subset(font)
subset.save_font(font, out, opts)
print(out, os.path.getsize(out), "bytes")
