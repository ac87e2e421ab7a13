"""The attribute vocabulary every part of the workbench shares: colours, shapes and sizes.

easy-VQA draws three of the shapes; the procedural scenes draw all four. Code that needs the
attributes of a particular dataset reads them from the dataset's own columns; these tuples fix
the order in which tables and plots list them.
"""
COLOURS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
SHAPES = ("circle", "rectangle", "triangle", "star")
EASYVQA_SHAPES = SHAPES[:3]  # easy-VQA has no star
SIZES = ("small", "large")
