"""Copy a few small fixture photos from the shared face sets into tests/fixtures/faces/ (.venv-ort).

Usage: python fixtures.py FACES_DIR OUT_DIR

Each photo is EXIF-oriented, flattened to RGB, downscaled so that its longer side is at most
MAX_SIDE pixels (Lanczos) and saved as baseline JPEG, quality 85, without metadata, so that every
file stays under 100 KB and the bytes are reproducible with the pinned Pillow.
"""

import os
import sys

from PIL import Image

from common import load_rgb

MAX_SIDE = 640
LIMIT = 100 * 1024

FR = "`ageitgey/face_recognition` (MIT-licensed code repository)"
FR_NOTE = "web photo; copyright stays with the photographer, used here only as a small test fixture"
# (fixture file, source path under FACES_DIR, what it shows, upstream origin, licence / credit)
FIXTURES = [
    ("obama_1.jpg", "face_recognition/barack_obama/obama.jpg", "person A (Barack Obama), photo 1",
     f"{FR} `examples/obama.jpg`", FR_NOTE),
    ("obama_2.jpg", "face_recognition/barack_obama/obama2.jpg", "person A (Barack Obama), photo 2",
     f"{FR} `examples/obama2.jpg`", FR_NOTE),
    ("biden_1.jpg", "face_recognition/joe_biden/biden.jpg", "person B (Joe Biden), photo 1",
     f"{FR} `examples/biden.jpg`", FR_NOTE),
    ("biden_2.jpg", "face_recognition/joe_biden/biden2.jpg", "person B (Joe Biden), photo 2",
     f"{FR} `examples/knn_examples/train/biden/biden2.jpg`", FR_NOTE),
    ("two_people.jpg", "detector/multi_face/fr_two_people.jpg", "two faces: persons A and B together",
     f"{FR} `examples/two_people.jpg`", FR_NOTE),
    ("no_face_coffee.jpg", "detector/no_face/sk_coffee.png", "no face (a coffee cup)",
     "`scikit-image/scikit-image` `src/_skimage2/data/coffee.png`",
     "CC0 (scikit-image docs: photo by Rachel Michetti, courtesy of Pikolo Espresso Bar)"),
]

CREDITS_HEAD = """# Fixture photos: credits

Written by `models/convert/fixtures.py` from the shared face collection (`shared/faces/`, see its
README). Each photo was EXIF-oriented, flattened to RGB, downscaled to at most {side} px on the
longer side and re-encoded as JPEG (quality 85). Only these few images are copied into the
repository; the sets themselves are not. `obama_1.jpg` is also the source of the onnxruntime
reference inputs in `tests/fixtures/ort/` (letterboxed for the detectors, aligned for the embedders).

| file | shows | shared set path | upstream origin | licence / credit |
|---|---|---|---|---|
"""


def main(faces: str, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for name, rel, shows, origin, credit in FIXTURES:
        im = Image.fromarray(load_rgb(os.path.join(faces, rel)))
        scale = MAX_SIDE / max(im.size)
        if scale < 1:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        dst = os.path.join(out_dir, name)
        im.save(dst, "JPEG", quality=85, optimize=False, progressive=False, subsampling="4:2:0")
        size = os.path.getsize(dst)
        assert size < LIMIT, (dst, size)
        print(f"fixtures: {rel} -> {dst} {im.width}x{im.height} {size} B")
        rows.append(f"| `{name}` | {shows} | `{rel}` | {origin} | {credit} |")
    with open(os.path.join(out_dir, "CREDITS.md"), "w") as f:
        f.write(CREDITS_HEAD.format(side=MAX_SIDE) + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
