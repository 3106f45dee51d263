"""Deep images: 150 layers stay under overlayfs's mount-option limit thanks to short links."""

from __future__ import annotations


def test_image_of_150_steps_builds_and_runs(builder, py311):
    image = py311
    for i in range(150):
        image = image.run_commands(f"echo {i} > /layer-{i:03d}")
    result, _ = builder.build(image)
    assert len(result.steps) == 152
    out = builder.run(image, "ls / | grep -c '^layer-'; cat /layer-000 /layer-149")
    assert out.split() == ["150", "0", "149"]
