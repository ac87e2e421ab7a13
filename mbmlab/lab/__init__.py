"""Running the lab: the ``mbmlab`` command, the parameter schema and presets, the papermill
runner, run folders and their index.html, compare, sweep, multi-seed runs, the scaling fit, the
browser check, and the accelerate-launch scripts. The top layer: it may import anything below;
nothing below imports it."""
