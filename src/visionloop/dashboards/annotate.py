"""Draw a result's boxes on its frame (the Live view and the Explain page's box picker)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw

PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))


def draw_boxes(jpeg: bytes, boxes: list[dict[str, Any]], highlight: int | None = None) -> Image.Image:
    """The frame with every box outlined and labelled ``#index class confidence``; ``highlight`` drawn thicker."""
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = (float(v) for v in box["xyxy"])
        colour = PALETTE[int(box.get("class_id", 0)) % len(PALETTE)]
        width = 4 if i == highlight else 2
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        name = box.get("class_name", box.get("class_id", "?"))
        label = f"#{i} {name} {float(box.get('confidence', 0.0)):.2f}"
        draw.text((x1 + 2, max(0.0, y1 - 12)), label, fill=colour)
    return image
