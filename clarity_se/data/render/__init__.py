"""Render a CEC2-layout demo dataset from real recordings (``clarity-se demo-data``).

Modules: :mod:`.sources` (embedded catalogue of recordings, train/dev split),
:mod:`.rooms` (shoebox image sources + measured KEMAR HRIRs + stochastic late tail),
:mod:`.scene_sampler` (CEC2 scene / room metadata), :mod:`.renderer` (audio, SNR, 16-bit
writing), :mod:`.listeners` (Bisgaard standard audiograms), :mod:`.cli`.

Domain randomisation (issue 17): :mod:`.corpus` (talkers / noises of a data root, validation
talkers), :mod:`.acoustics` (four acoustic models, BTE geometry, microphone mismatch),
:mod:`.randomised` (the on-the-fly training ``Dataset``, ``build_training_dataset``),
:mod:`.heldout` (CEC2-layout sets of one acoustic model: ``demo-data --acoustic-model``).

For on-the-fly training mixtures::

    from clarity_se.data.render import sample_scene, scene_rng, render_scene
    scene, room = sample_scene(scene_rng(seed, "S00001"), "train", "S00001")
    signals = render_scene(scene, room, seed=seed)   # dict of arrays, see render_scene
"""

from clarity_se.data.render.renderer import render_scene, write_scene
from clarity_se.data.render.scene_sampler import sample_room, sample_scene, scene_rng

__all__ = ["render_scene", "write_scene", "sample_scene", "sample_room", "scene_rng"]
