"""MagicPose: pose and facial-expression retargeting with a Stable Diffusion 1.5 plug-in."""

__version__ = "0.1.0"
