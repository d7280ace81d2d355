"""Held-out retargeting examples: one test-split puppet performing another test-split puppet's dance.

Both the identity and the motion come from the test split, so no part of an example was seen in
training. The puppet world also renders what the result should look like (`truth`): the reference
identity, camera and scene in the dance's joint angles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magicpose.data.puppet.render import render_puppet
from magicpose.data.puppet.skeleton import articulate
from magicpose.data.puppet.world import PuppetVideo, video_spec
from magicpose.poses.types import Pose, PoseSequence


@dataclass
class RetargetingExample:
    reference: np.ndarray  # (H, W, 3) uint8: the identity's first frame
    reference_pose: Pose  # its pose, in the reference's pixels
    driving: PoseSequence  # the other puppet's dance, as a detector would see it
    truth: list[np.ndarray]  # the reference identity rendered in the dance, frame by frame


def retargeting_example(identity: int, motion: int, frames: int, size: int) -> RetargetingExample:
    """Test puppet `identity` (full body) driven by the dance of test puppet `motion`."""
    if identity == motion:
        raise ValueError("choose a motion from another puppet than the identity (a retargeting example)")
    reference_video = PuppetVideo(video_spec("test", identity, num_frames=1, framing="full", width=size, height=size))
    driving_video = PuppetVideo(video_spec("test", motion, num_frames=frames, framing="full", width=size, height=size))
    body, camera = reference_video.identity, reference_video.camera

    def truth(index: int) -> np.ndarray:  # the reference body, camera and scene, in the dance's joint angles
        pose = articulate(body.proportions, driving_video.angles(index)).transformed(camera.scale, camera.offset)
        return render_puppet(body, pose, reference_video.background).image

    first = reference_video.frame(0)
    return RetargetingExample(
        reference=first.image,
        reference_pose=first.pose,
        driving=driving_video.poses(),
        truth=[truth(i) for i in range(frames)],
    )
